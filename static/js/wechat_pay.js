/* The WeChat Native pay page: ask the shop every few seconds whether the order is
 * still waiting; once it is paid (or no longer payable), say so and go to the order.
 * Strings come from data-* attributes rendered by the (translated) template.
 * No inline script anywhere: this file is all the page runs.
 */
(function () {
  "use strict";

  var page = document.querySelector("[data-wechat-pay]");
  if (!page || !window.fetch) {
    return;
  }
  var statusUrl = page.getAttribute("data-status-url");
  var seconds = parseInt(page.getAttribute("data-poll-seconds"), 10) || 3;
  var statusLine = page.querySelector("[data-wechat-pay-status]");
  var stopped = false;

  function finish(state) {
    stopped = true;
    if (statusLine) {
      statusLine.textContent = page.getAttribute(
        state.status === "cancelled" ? "data-closed-label" : "data-paid-label"
      );
    }
    window.setTimeout(function () {
      window.location.assign(state.next);
    }, 800);
  }

  function poll() {
    if (stopped) {
      return;
    }
    fetch(statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (state) {
        if (state && state.done) {
          finish(state);
        } else {
          window.setTimeout(poll, seconds * 1000);
        }
      })
      .catch(function () {
        // A dropped connection on a phone: try again a little later.
        window.setTimeout(poll, seconds * 2000);
      });
  }

  window.setTimeout(poll, seconds * 1000);
})();

/* Kaquan storefront: small progressive enhancements. Every page works without this file.
 *
 * - forms marked data-once submit once (the server is idempotent too);
 * - the product page keeps quantity limits and the total in step with the chosen SKU;
 * - "显示卡密" fetches the code as JSON and shows it in place; "复制" copies it;
 * - an order page with something in flight (payment landing, a top-up on its way)
 *   re-fetches itself every few seconds and swaps in the fresh part, until done.
 * User-visible strings come from data-* attributes rendered by the (translated) templates.
 */
(function () {
  "use strict";

  // The live order region as served, before this script changes anything in it.
  var liveRegions = Array.prototype.map.call(
    document.querySelectorAll("[data-order-live]"),
    function (region) {
      return { region: region, markup: serverMarkup(region) };
    }
  );

  /* ---- Double-submit guard ------------------------------------------------------ */

  function lockForm(form, submitter) {
    // A disabled submit button is left out of the form data, so keep its name/value
    // (the sandbox page's action=pay|cancel) in a hidden field first.
    if (submitter && submitter.name) {
      var hidden = document.createElement("input");
      hidden.type = "hidden";
      hidden.name = submitter.name;
      hidden.value = submitter.value;
      hidden.setAttribute("data-submitter-copy", "");
      form.appendChild(hidden);
    }
    form.querySelectorAll("button[type=submit], button:not([type])").forEach(function (button) {
      button.disabled = true;
      var busy = button.getAttribute("data-busy-label");
      if (busy && (button === submitter || !submitter)) {
        button.setAttribute("data-idle-label", button.textContent);
        button.textContent = busy;
      }
    });
    form.setAttribute("data-submitted", "");
  }

  function unlockForm(form) {
    form.removeAttribute("data-submitted");
    form.querySelectorAll("[data-submitter-copy]").forEach(function (el) {
      el.remove();
    });
    form.querySelectorAll("button").forEach(function (button) {
      button.disabled = false;
      var idle = button.getAttribute("data-idle-label");
      if (idle !== null) {
        button.textContent = idle;
        button.removeAttribute("data-idle-label");
      }
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute("data-once")) {
      return;
    }
    if (form.hasAttribute("data-submitted")) {
      event.preventDefault();
      return;
    }
    lockForm(form, event.submitter);
  });

  // Back/forward cache restores the page with its buttons still disabled.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      document.querySelectorAll("form[data-submitted]").forEach(unlockForm);
    }
  });

  /* ---- Product page: SKU choice, quantity, total ------------------------------------ */

  function initBuyForm(form) {
    var qty = form.querySelector("input[name=quantity]");
    var total = form.querySelector("[data-total]");
    var help = form.querySelector("[data-qty-help]");
    var helpTemplate = form.querySelector("[data-qty-help-template]");
    var buyButton = form.querySelector("[data-buy-button]");
    var steppers = form.querySelectorAll("[data-qty-step]");
    if (!qty) {
      return;
    }

    function selected() {
      return form.querySelector("input[name=sku]:checked");
    }

    function clamp(value, min, max) {
      if (isNaN(value)) {
        return min;
      }
      return Math.min(Math.max(value, min), max);
    }

    function refresh(resetQuantity) {
      var radio = selected();
      if (!radio) {
        if (buyButton) {
          buyButton.disabled = true;
        }
        steppers.forEach(function (b) {
          b.disabled = true;
        });
        return;
      }
      var min = parseInt(radio.getAttribute("data-min"), 10) || 1;
      var max = parseInt(radio.getAttribute("data-max"), 10) || min;
      qty.min = String(min);
      qty.max = String(max);
      var value = clamp(parseInt(qty.value, 10), min, max);
      if (resetQuantity && isNaN(parseInt(qty.value, 10))) {
        value = min;
      }
      qty.value = String(value);
      steppers.forEach(function (b) {
        var step = parseInt(b.getAttribute("data-qty-step"), 10);
        b.disabled = step < 0 ? value <= min : value >= max;
      });
      if (help && helpTemplate) {
        help.textContent = helpTemplate.content.textContent
          .trim()
          .replace("__MIN__", String(min))
          .replace("__MAX__", String(max));
      }
      if (total) {
        // Prices are two-place decimals: add in cents to avoid float error.
        var cents = Math.round(parseFloat(radio.getAttribute("data-price")) * 100) * value;
        total.textContent = "¥" + (cents / 100).toFixed(2);
      }
      if (buyButton) {
        buyButton.disabled = false;
      }
    }

    form.addEventListener("change", function (event) {
      if (event.target.name === "sku") {
        refresh(true);
      } else if (event.target === qty) {
        refresh(false);
      }
    });
    qty.addEventListener("input", function () {
      var value = parseInt(qty.value, 10);
      if (!isNaN(value)) {
        refresh(false);
      }
    });
    steppers.forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var step = parseInt(button.getAttribute("data-qty-step"), 10);
        qty.value = String((parseInt(qty.value, 10) || 0) + step);
        refresh(false);
      });
    });
    refresh(true);
  }

  document.querySelectorAll("[data-buy-form]").forEach(initBuyForm);

  /* ---- Order page: reveal and copy codes ---------------------------------------------- */

  function showCopy(row) {
    var copy = row.querySelector("[data-copy]");
    if (copy) {
      copy.hidden = false;
    }
  }

  function showError(row, message) {
    var box = row.querySelector("[data-code-error]");
    if (box) {
      box.textContent = message;
      box.hidden = false;
    }
  }

  document.querySelectorAll("[data-code-row]").forEach(function (row) {
    var value = row.querySelector("[data-code-value]");
    if (value && value.classList.contains("is-revealed")) {
      showCopy(row);
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute("data-reveal-form") || !window.fetch) {
      return;
    }
    event.preventDefault();
    var row = form.closest("[data-code-row]");
    var button = form.querySelector("button");
    var token = form.querySelector("input[name=csrfmiddlewaretoken]");
    if (form.hasAttribute("data-submitted")) {
      return;
    }
    lockForm(form, button);
    var errorBox = row.querySelector("[data-code-error]");
    if (errorBox) {
      errorBox.hidden = true;
    }

    fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        Accept: "application/json",
        "X-CSRFToken": token ? token.value : "",
        "X-Requested-With": "XMLHttpRequest",
      },
      body: new FormData(form),
    })
      .then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        if (type.indexOf("application/json") === -1) {
          // Logged out, CSRF failure or server error: let the plain form handle it.
          throw new Error("not json");
        }
        return response.json().then(function (data) {
          return { ok: response.ok, data: data };
        });
      })
      .then(function (result) {
        if (result.ok && typeof result.data.code === "string") {
          var value = row.querySelector("[data-code-value]");
          value.textContent = result.data.code;
          value.classList.add("is-revealed");
          form.remove();
          showCopy(row);
          return;
        }
        unlockForm(form);
        var message = result.data && result.data.error && result.data.error.message;
        showError(row, message || row.getAttribute("data-error-label") || "");
      })
      .catch(function () {
        unlockForm(form);
        HTMLFormElement.prototype.submit.call(form);
      });
  });

  function copyFallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (e) {
      ok = false;
    }
    area.remove();
    return ok ? Promise.resolve() : Promise.reject(new Error("copy failed"));
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) {
      return;
    }
    var row = button.closest("[data-code-row]");
    var value = row && row.querySelector("[data-code-value].is-revealed");
    if (!value) {
      return;
    }
    var text = value.textContent.trim();
    var copying =
      navigator.clipboard && window.isSecureContext
        ? navigator.clipboard.writeText(text).catch(function () {
            return copyFallback(text);
          })
        : copyFallback(text);
    var idle = button.getAttribute("data-idle-label") || button.textContent;
    button.setAttribute("data-idle-label", idle);
    copying
      .then(function () {
        button.textContent = button.getAttribute("data-copied-label") || idle;
      })
      .catch(function () {
        button.textContent = button.getAttribute("data-copy-failed-label") || idle;
        var range = document.createRange();
        range.selectNodeContents(value);
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      })
      .then(function () {
        window.setTimeout(function () {
          button.textContent = idle;
        }, 2000);
      });
  });

  /* ---- Live order page ---------------------------------------------------------- */

  var POLL_MS = 2500;
  var POLL_LIMIT = 240; // ten minutes; after that a manual reload is fine
  var FOCUSABLE = "a[href], button, summary, input:not([type=hidden]), [tabindex]";
  var served = new WeakMap(); // region → its server markup

  // The region as the server rendered it, minus what changes on every render (the
  // CSRF tokens of the reveal forms): two polls that say the same compare equal.
  function serverMarkup(region) {
    var copy = region.cloneNode(true);
    copy.querySelectorAll("input[name=csrfmiddlewaretoken]").forEach(function (el) {
      el.removeAttribute("value");
    });
    return copy.outerHTML;
  }

  // Codes revealed on this page stay revealed in the fresh copy (no second reveal,
  // no second audit row).
  function carryRevealed(from, to) {
    from.querySelectorAll("[data-code-row][data-code-id]").forEach(function (row) {
      var value = row.querySelector("[data-code-value].is-revealed");
      if (!value) {
        return;
      }
      var id = row.getAttribute("data-code-id");
      var target = to.querySelector('[data-code-row][data-code-id="' + id + '"]');
      var targetValue = target && target.querySelector("[data-code-value]");
      if (!targetValue) {
        return;
      }
      targetValue.textContent = value.textContent;
      targetValue.classList.add("is-revealed");
      var form = target.querySelector("[data-reveal-form]");
      if (form) {
        form.remove();
      }
      showCopy(target);
    });
  }

  function progressStates(region) {
    var states = {};
    region.querySelectorAll("[data-line-progress]").forEach(function (el) {
      var badge = el.querySelector(".line-status");
      states[el.getAttribute("data-line-progress")] = {
        name: el.getAttribute("data-line-name") || "",
        state: badge ? badge.textContent.trim() : "",
      };
    });
    return states;
  }

  // Screen readers hear what changed; the swapped region itself is new DOM that
  // assistive technology would not announce.
  function announceChanges(before, after) {
    var box = document.querySelector("[data-order-announce]");
    if (!box) {
      return;
    }
    var changed = [];
    Object.keys(after).forEach(function (id) {
      if (!before[id] || before[id].state !== after[id].state) {
        changed.push((after[id].name ? after[id].name + " " : "") + after[id].state);
      }
    });
    if (changed.length) {
      box.textContent = changed.join(" · ");
    }
  }

  function swapRegion(region, fresh) {
    var focusables = Array.prototype.slice.call(region.querySelectorAll(FOCUSABLE));
    var focused = focusables.indexOf(document.activeElement);
    var before = progressStates(region);
    carryRevealed(region, fresh);
    region.replaceWith(fresh);
    if (focused !== -1) {
      // Keep the keyboard user's place: the same control in the fresh copy.
      var again = fresh.querySelectorAll(FOCUSABLE)[focused];
      if (again) {
        again.focus({ preventScroll: true });
      }
    }
    announceChanges(before, progressStates(fresh));
  }

  function pollOrder(region, remaining) {
    var url = region.getAttribute("data-poll");
    if (!url || remaining <= 0 || !window.fetch || !window.DOMParser) {
      return;
    }
    window.setTimeout(function () {
      if (document.hidden || region.querySelector("form[data-submitted]")) {
        // No traffic from a background tab; never swap under a reveal in progress.
        pollOrder(region, remaining);
        return;
      }
      fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (response) {
          return response.ok ? response.text() : Promise.reject(response.status);
        })
        .then(function (html) {
          var fresh = new DOMParser()
            .parseFromString(html, "text/html")
            .querySelector("[data-order-live]");
          if (!fresh) {
            pollOrder(region, remaining - 1);
            return;
          }
          var markup = serverMarkup(fresh);
          if (markup === served.get(region)) {
            pollOrder(region, remaining - 1); // nothing changed: leave the page alone
            return;
          }
          fresh = document.importNode(fresh, true);
          served.set(fresh, markup);
          swapRegion(region, fresh);
          pollOrder(fresh, remaining - 1);
        })
        .catch(function () {
          pollOrder(region, remaining - 1);
        });
    }, POLL_MS);
  }

  liveRegions.forEach(function (entry) {
    served.set(entry.region, entry.markup);
    if (entry.region.hasAttribute("data-poll")) {
      pollOrder(entry.region, POLL_LIMIT);
    }
  });
})();

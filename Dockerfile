# Production image: one image, three roles (web, worker, beat) chosen by the command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir -e . \
    && DEBUG=true python manage.py collectstatic --noinput \
    && useradd --system --uid 1000 kaquan && chown -R kaquan /app
USER kaquan
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--workers", "4", "--worker-class", "sync", "--bind", "0.0.0.0:8000", "--timeout", "120", "--access-logfile", "-"]

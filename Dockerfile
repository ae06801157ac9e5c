# keyresponse serve: the webhook receiver as a container.
#   docker build -t keyresponse .
#   docker run -p 8080:8080 -v $PWD/keyresponse.yaml:/srv/keyresponse/keyresponse.yaml \
#     -e OPENAI_ADMIN_KEY -e GITHUB_WEBHOOK_SECRET keyresponse
# The state (incident journals, the delivery journal) lives in /srv/keyresponse/.keyresponse:
# mount a volume there so a restart resumes what was running.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=0 PYTHONUNBUFFERED=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . && useradd --system --uid 10001 --home-dir /srv/keyresponse keyresponse \
    && mkdir -p /srv/keyresponse && chown keyresponse /srv/keyresponse
USER keyresponse
WORKDIR /srv/keyresponse
EXPOSE 8080
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"
# SIGTERM stops accepting and lets running incidents finish (each step is journaled as it ends)
STOPSIGNAL SIGTERM
ENTRYPOINT ["keyresponse", "serve", "--host", "0.0.0.0", "--port", "8080"]

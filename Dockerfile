FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY broker broker
COPY adapters adapters
COPY xsd xsd
RUN pip install --no-cache-dir . && useradd --system --home /app broker && mkdir -p /app/keys /app/var \
    && chown broker /app/keys /app/var
USER broker
# Keys are generated on first start into the mounted volume; nothing secret is baked into the image.
ENV BROKER_KEYS_DIR=/app/keys
EXPOSE 8000
CMD ["sh", "-c", "broker db upgrade && broker serve --host 0.0.0.0 --port 8000"]

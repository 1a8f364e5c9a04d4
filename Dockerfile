# chainpay gateway image: API, /metrics, indexer and webhook dispatcher in one process.
#   docker build -t chainpay .
#   docker run -v $PWD/chainpay.toml:/etc/chainpay/chainpay.toml:ro -v chainpay-data:/data \
#     -e CHAINPAY_CONFIG=/etc/chainpay/chainpay.toml -p 8080:8080 chainpay
# The dev chain tooling (npm, anvil) is not part of this image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid so the DuckDB volume keeps the same owner across rebuilds.
RUN groupadd --system --gid 10001 chainpay \
 && useradd --system --uid 10001 --gid chainpay --create-home --home-dir /home/chainpay chainpay \
 && mkdir -p /data /etc/chainpay \
 && chown chainpay:chainpay /data

# The same install as the README's: `pip install .` of the repository. Every dependency
# ships manylinux wheels for CPython 3.11, so no compiler is needed.
WORKDIR /build
COPY pyproject.toml README.md ./
COPY indexer ./indexer
COPY api ./api
RUN pip install --no-cache-dir . \
 && rm -rf /build

USER chainpay
WORKDIR /home/chainpay
VOLUME /data
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

ENTRYPOINT ["chainpay"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]

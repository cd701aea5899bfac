# kafkapy broker image: docker build -t kafkapy .
#   docker run -p 9092:9092 -p 9404:9404 kafkapy broker --listen 0.0.0.0:9092 --advertise localhost:9092 --data-dir /data \
#       --metrics-listen 0.0.0.0:9404
# Clusters need nothing more in this image (the etcd client is the standard library);
# etcd runs from its own image: docker-compose.yml, profile "cluster".
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kafkapy ./kafkapy
RUN pip install --no-cache-dir ".[fast]" && rm -rf /src
WORKDIR /
VOLUME /data
EXPOSE 9092 9404
# the default command serves /metrics, /healthz and /readyz on 9404 (docs/monitoring.md); the health
# check asks /readyz: healthy once the logs are recovered, metadata loaded and the listeners serve
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=6 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9404/readyz', timeout=2)"]
ENTRYPOINT ["kafkapy"]
CMD ["broker", "--listen", "0.0.0.0:9092", "--data-dir", "/data", "--metrics-listen", "0.0.0.0:9404"]

# kafkapy broker image: docker build -t kafkapy .
#   docker run -p 9092:9092 kafkapy broker --listen 0.0.0.0:9092 --advertise localhost:9092 --data-dir /data
# Clusters need nothing more in this image (the etcd client is the standard library);
# etcd runs from its own image: docker-compose.yml, profile "cluster".
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kafkapy ./kafkapy
RUN pip install --no-cache-dir ".[fast]" && rm -rf /src
WORKDIR /
VOLUME /data
EXPOSE 9092
ENTRYPOINT ["kafkapy"]
CMD ["broker", "--listen", "0.0.0.0:9092", "--data-dir", "/data"]

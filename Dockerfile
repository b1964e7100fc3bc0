# The riskwatch image: the engine, its default rules and dashboards.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY monitor monitor
COPY detectors detectors
COPY connectors connectors
COPY rules rules
COPY dashboards dashboards
RUN pip install --no-cache-dir . && useradd --system --home /app riskwatch
USER riskwatch
ENV RISKWATCH_DATA_DIR=/var/lib/riskwatch
ENTRYPOINT ["riskwatch"]
CMD ["--help"]

FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY experiments ./experiments
COPY service ./service
COPY stats ./stats
RUN pip install --no-cache-dir .
ENV ABACUS_DATA_DIR=/data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["abacus", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]

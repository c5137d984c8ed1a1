# kexue-serve image. CPU by default; `--build-arg VARIANT=gpu` installs TensorFlow with CUDA.
# The model store is a volume (/models), never baked into the image.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG VARIANT=cpu
# The version pinned in pyproject.toml (a test keeps the two equal).
ARG TENSORFLOW_VERSION=2.21.0
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY service service
COPY models models
COPY training training
# The same install step as `make install` without the dev tools (`make image-check` runs it).
# GPU: tensorflow-cpu and tensorflow share one package folder, so the CPU build is removed
# before TensorFlow with CUDA goes in, never after.
RUN pip install --no-cache-dir --upgrade pip \
 && pip install --no-cache-dir . \
 && if [ "$VARIANT" = "gpu" ]; then \
      pip uninstall -y tensorflow-cpu \
      && pip install --no-cache-dir "tensorflow[and-cuda]==${TENSORFLOW_VERSION}"; \
    fi

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --create-home --uid 10001 kexue \
 && mkdir -p /models && chown kexue /models
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    MODEL_STORE=/models \
    PORT=8000 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PYTHONUNBUFFERED=1
USER kexue
WORKDIR /home/kexue
VOLUME ["/models"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)" || exit 1
CMD ["python", "-m", "service"]

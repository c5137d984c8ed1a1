# kexue-serve image. CPU by default; `--build-arg VARIANT=gpu` installs TensorFlow with CUDA.
# The model store is a volume (/models), never baked into the image.
# PYTHON_IMAGE: any Debian-like image with Python 3.11, its venv module and useradd: the official
# python image, or the Debian bookworm base scripts/build_base_image.sh makes without a registry.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# The pyproject extra with TensorFlow in it: cpu (tensorflow-cpu) or gpu (tensorflow[and-cuda]).
ARG VARIANT=cpu
WORKDIR /src
# python3: the official image also names it python, a Debian base only python3.
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY service service
COPY models models
COPY training training
# The same install step as `make install` without the dev tools (`make image-check` runs it).
RUN pip install --no-cache-dir --upgrade pip \
 && pip install --no-cache-dir ".[${VARIANT}]"

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --create-home --uid 10001 kexue \
 && mkdir -p /models && chown kexue /models
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    MODEL_STORE=/models \
    PORT=8000 \
    PYTHONUNBUFFERED=1
USER kexue
WORKDIR /home/kexue
VOLUME ["/models"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)" || exit 1
CMD ["python", "-m", "service"]

# tickstream image: slim, non-root, one image for ingest / process / serve / run.
FROM python:3.11-slim AS build
WORKDIR /src
# gcc builds the wire decoders' C fast path into the wheel (the runtime image needs no compiler)
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* && pip install --no-cache-dir --upgrade pip build
COPY pyproject.toml setup.py README.md ./
COPY src ./src
RUN python -m build --wheel --outdir /wheels

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TICKSTREAM_DATA_DIR=/var/lib/tickstream
RUN groupadd --system tickstream && useradd --system --gid tickstream --home /var/lib/tickstream tickstream \
    && mkdir -p /var/lib/tickstream && chown tickstream:tickstream /var/lib/tickstream
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir "$(ls /wheels/*.whl)[all]" && rm -rf /wheels
USER tickstream
WORKDIR /var/lib/tickstream
EXPOSE 8000
ENTRYPOINT ["tickstream"]
CMD ["run", "--host", "0.0.0.0"]

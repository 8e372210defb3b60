"""Resolve Apache Kafka and its runtime jars from Maven Central into a shared cache, once per version
and pom (``python -m infra.local_kafka fetch``). Needs Maven (``mvn``) on PATH the first time."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from infra.broker_process import KAFKA_DIR, LocalKafkaError, Paths, default_paths, kafka_version
from infra.processes import tail_text

POM = KAFKA_DIR / "pom.xml"
MAVEN_TIMEOUT_SECONDS = 900
# Maven's line per artifact: "Downloaded from central: URL (58 kB at 1 MB/s)".
DOWNLOADED = re.compile(r"Downloaded from [^:]+: (\S+) \(([^)]*)\)")


def fetch(paths: Paths | None = None, quiet: bool = False) -> Path:
    """Resolve Kafka and its runtime jars into the cache; return the libs folder.

    Does no network work when an earlier fetch of the same version and pom completed.
    """
    paths = paths or default_paths()
    if fetch_is_complete(paths):
        return paths.libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalKafkaError("Maven (mvn) is not on PATH; it is needed once to fetch the Kafka jars")
    paths.cache.mkdir(parents=True, exist_ok=True)
    # Fetch into a fresh folder and swap it in, so a failed run never leaves a mixed libs/.
    staging = paths.cache / f"libs.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    if not quiet:
        print(f"fetching Kafka {kafka_version()} jars with Maven into {paths.libs} ...",
              file=sys.stderr, flush=True)
    cmd = [mvn, "-B", "-f", str(POM), "dependency:copy-dependencies",
           f"-DoutputDirectory={staging}", f"-Dkafka.version={kafka_version()}"]
    returncode, output = _run_maven(cmd, show_progress=not quiet)
    jars = sorted(p.name for p in staging.glob("*.jar")) if staging.is_dir() else []
    if returncode != 0 or not jars:
        shutil.rmtree(staging, ignore_errors=True)
        if returncode is None:
            raise LocalKafkaError(f"mvn did not finish in {MAVEN_TIMEOUT_SECONDS} s (is Maven Central reachable?)",
                                  tail_text(output))
        raise LocalKafkaError(f"mvn dependency:copy-dependencies failed (exit {returncode})", tail_text(output))
    shutil.rmtree(paths.libs, ignore_errors=True)
    staging.rename(paths.libs)
    marker = {"version": kafka_version(), "pom_sha256": _pom_digest(), "jars": jars}
    paths.marker.write_text(json.dumps(marker, indent=1) + "\n")
    return paths.libs


def _run_maven(cmd: list[str], *, show_progress: bool) -> tuple[int | None, str]:
    """(exit status, None if it ran out of time; its output). Each artifact Maven reports as
    downloaded moves a progress bar by its size (on a terminal: infra.progress)."""
    from infra.progress import bar, size_in_bytes

    lines: list[str] = []
    deadline = time.monotonic() + MAVEN_TIMEOUT_SECONDS
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          text=True) as process, \
            bar("Kafka jars", unit="B", enabled=show_progress) as progress:
        assert process.stdout is not None
        # A watchdog, since reading the pipe blocks: Maven stuck on the network is killed on time.
        timer = threading.Timer(MAVEN_TIMEOUT_SECONDS, process.kill)
        timer.start()
        try:
            for line in process.stdout:
                lines.append(line)
                downloaded = DOWNLOADED.search(line)
                if downloaded:
                    progress.update(size_in_bytes(downloaded.group(2)))
                    progress.set_postfix_str(downloaded.group(1).rsplit("/", 1)[-1][:40], refresh=False)
        finally:
            timer.cancel()
        returncode = process.wait()
    return (returncode if time.monotonic() < deadline else None), "".join(lines[-200:])


def fetch_is_complete(paths: Paths) -> bool:
    """True if the cache holds every jar an earlier fetch of this version and pom resolved."""
    try:
        marker = json.loads(paths.marker.read_text())
    except (OSError, ValueError):
        return False
    return (marker.get("version") == kafka_version()
            and marker.get("pom_sha256") == _pom_digest()
            and all((paths.libs / jar).is_file() for jar in marker.get("jars", ["?"])))


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()

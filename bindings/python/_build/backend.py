"""A minimal PEP 517 build backend using only the standard library: builds the pure-Python wheel
(and an sdist, and a PEP 660 editable wheel) of the coderinfer package.

Why not setuptools: pip offline (--no-index) cannot fetch setuptools/wheel into an isolated build
environment, and setuptools without the `wheel` package cannot build wheels. This backend has no
requirements, so `pip install ./bindings/python` works anywhere pip does.

When libcoderinfer.so* files sit in coderinfer/ they are packed too, and the wheel is then tagged
for this platform (py3-none-<plat>) instead of py3-none-any.
"""
import base64
import hashlib
import io
import os
import re
import sysconfig
import tarfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = "coderinfer"


def _project():
    text = open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8").read()
    proj = text[text.index("[project]"):]
    get = lambda k: re.search(r'^%s\s*=\s*"([^"]*)"' % k, proj, re.M).group(1)
    return get("name"), get("version"), get("description"), get("requires-python")


def _metadata():
    name, version, summary, req = _project()
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    return ("Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: %s\nRequires-Python: %s\n"
            "Description-Content-Type: text/markdown\n\n%s" % (name, version, summary, req, readme))


def _package_files():
    out = []
    for dirpath, dirnames, files in os.walk(os.path.join(ROOT, PKG)):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for f in sorted(files):
            if f.endswith(".py") or f.startswith("libcoderinfer.so") or f == "py.typed":
                full = os.path.join(dirpath, f)
                out.append((full, os.path.relpath(full, ROOT).replace(os.sep, "/")))
    return out


def _tag(files):
    if any("libcoderinfer.so" in arc for _, arc in files):
        return "py3-none-" + re.sub(r"[-.]", "_", sysconfig.get_platform())
    return "py3-none-any"


def _write_wheel(wheel_directory, entries, tag):
    """entries: [(arcname, bytes)]. Writes the .dist-info files and RECORD; returns the name."""
    name, version = _project()[:2]
    dist = "%s-%s.dist-info" % (name, version)
    entries = list(entries) + [
        (dist + "/METADATA", _metadata().encode()),
        (dist + "/WHEEL", ("Wheel-Version: 1.0\nGenerator: coderinfer-backend\nRoot-Is-Purelib: %s\nTag: %s\n"
                           % ("true" if tag.endswith("any") else "false", tag)).encode()),
    ]
    record = []
    for arc, data in entries:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (arc, digest, len(data)))
    record.append(dist + "/RECORD,,")
    fname = "%s-%s-%s.whl" % (name, version, tag)
    with zipfile.ZipFile(os.path.join(wheel_directory, fname), "w", zipfile.ZIP_DEFLATED) as z:
        for arc, data in entries:
            zi = zipfile.ZipInfo(arc, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = (0o755 if "libcoderinfer.so" in arc else 0o644) << 16
            z.writestr(zi, data, zipfile.ZIP_DEFLATED)
        z.writestr(dist + "/RECORD", "\n".join(record) + "\n")
    return fname


def get_requires_for_build_wheel(config_settings=None):
    return []


get_requires_for_build_sdist = get_requires_for_build_editable = get_requires_for_build_wheel


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    name, version = _project()[:2]
    dist = "%s-%s.dist-info" % (name, version)
    os.makedirs(os.path.join(metadata_directory, dist), exist_ok=True)
    with open(os.path.join(metadata_directory, dist, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata())
    return dist


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = _package_files()
    return _write_wheel(wheel_directory, [(arc, open(full, "rb").read()) for full, arc in files], _tag(files))


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # A .pth file puts the source directory on sys.path: edits take effect without reinstalling.
    return _write_wheel(wheel_directory, [("coderinfer_editable.pth", (ROOT + "\n").encode())], "py3-none-any")


def build_sdist(sdist_directory, config_settings=None):
    name, version = _project()[:2]
    base = "%s-%s" % (name, version)
    fname = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, fname), "w:gz", format=tarfile.PAX_FORMAT) as t:
        for rel in ["pyproject.toml", "README.md", "_build/backend.py"]:
            t.add(os.path.join(ROOT, rel), base + "/" + rel)
        for full, arc in _package_files():
            t.add(full, base + "/" + arc)
        pkg_info = _metadata().encode()
        ti = tarfile.TarInfo(base + "/PKG-INFO")
        ti.size = len(pkg_info)
        t.addfile(ti, io.BytesIO(pkg_info))
    return fname

"""Packs apirule_wasm.wasm as an OCI image that Istio's WasmPlugin pulls (`make oci`), without a
Docker engine: it writes an OCI image layout directory (oci-layout, index.json, blobs/sha256/...)
that skopeo (or oras, crane, ...) pushes to any registry.

Which format. Istio's fetcher (istio/istio pkg/wasm/imagefetcher.go) accepts three kinds of image:
a Docker image and an OCI image whose last layer is a tar+gzip holding `plugin.wasm` (the "compat"
variant of the Wasm image spec), tried first, and the "oci" artifact variant (media types
application/vnd.module.wasm.*), tried last. Istio's own guide to building images
(istio-ecosystem/wasm-extensions, doc/how-to-build-oci-images.md) describes only the compat
variant, and Istio takes the artifact variant only with exactly two layers (the Wasm layer and a
config *layer*: "number of layers must be 2"), so a single file pushed as a one-layer artifact
(`oras push`) is refused. We write the compat variant as a standard OCI image: one layer of type
application/vnd.oci.image.layer.v1.tar+gzip whose only file is `plugin.wasm`.

Reproducible: no timestamps (tar mtime 0, gzip mtime 0, no `created` in the config), owner 0:0,
canonical JSON (sorted keys, no spaces), and a gzip stream written here in stored (uncompressed)
deflate blocks, so the bytes and the image digest depend only on the .wasm, not on the zlib build
(zlib and zlib-ng compress the same input differently). Istio needs gzip; the layer is the .wasm's
size plus a few KiB instead of about a third of it compressed, but the module is pulled once per
proxy, so its size matters less than a digest one can rebuild anywhere.

    python3 tools/oci_image.py --wasm WASM --out DIR --tag TAG
"""
import argparse
import hashlib
import io
import json
import os
import re
import shutil
import struct
import sys
import tarfile
import zlib

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
# The file name Istio looks for in the layer (extractWasmPluginBinary: filepath.Base == "plugin.wasm").
PLUGIN_FILE = "plugin.wasm"
# The tag rule of the OCI distribution spec.
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def plugin_tar(wasm):
    """A tar archive with one regular file, plugin.wasm, and nothing that varies between builds."""
    info = tarfile.TarInfo(PLUGIN_FILE)
    info.size = len(wasm)
    info.mode = 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    buf = io.BytesIO()
    # USTAR: a fixed header layout, no PAX records that could differ between Python versions.
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(wasm))
    return buf.getvalue()


def gzip_stored(data):
    """gzip (RFC 1952) of data in stored deflate blocks (RFC 1951, BTYPE 00, at most 65535 bytes
    each): the same bytes everywhere (see the module docstring)."""
    out = [b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x00\xff"]  # deflate, no flags, mtime 0, OS unknown
    block = 0xFFFF
    for start in range(0, max(len(data), 1), block):
        chunk = data[start:start + block]
        final = start + block >= len(data)
        out.append(bytes([1 if final else 0]) + struct.pack("<HH", len(chunk), len(chunk) ^ 0xFFFF) + chunk)
    out.append(struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF))
    return b"".join(out)


def descriptor(media_type, blob):
    return {"mediaType": media_type, "digest": "sha256:" + sha256_hex(blob), "size": len(blob)}


class Image:
    """The three blobs of the image; `digest` is the manifest's, the one registries and Istio show."""

    def __init__(self, wasm):
        self.wasm = wasm
        tar = plugin_tar(wasm)
        self.layer = gzip_stored(tar)
        self.config = canonical_json({
            # Go's names for the target (GOOS=wasip1 GOARCH=wasm); nothing runs this as a container.
            "architecture": "wasm",
            "os": "wasip1",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha256_hex(tar)]},
        })
        self.manifest = canonical_json({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": descriptor(CONFIG_TYPE, self.config),
            "layers": [descriptor(LAYER_TYPE, self.layer)],
        })
        self.digest = "sha256:" + sha256_hex(self.manifest)
        self.wasm_sha256 = sha256_hex(wasm)


def write_layout(out_dir, wasm, tag):
    """Write the image layout for `wasm` (bytes) to out_dir, replacing an earlier layout there, with
    `tag` as its reference name (what `oci:DIR:TAG` names). Returns the Image."""
    if not TAG_RE.fullmatch(tag):
        raise ValueError(f"not a valid OCI tag: {tag!r}")
    if os.path.exists(out_dir):
        # Only ever delete what this tool wrote: stale blobs of an older .wasm would stay otherwise.
        if os.listdir(out_dir) and not os.path.isfile(os.path.join(out_dir, "oci-layout")):
            raise ValueError(f"{out_dir} exists and is not an OCI image layout; not replacing it")
        shutil.rmtree(out_dir)
    image = Image(wasm)
    blobs = os.path.join(out_dir, "blobs", "sha256")
    os.makedirs(blobs)
    for blob in (image.layer, image.config, image.manifest):
        with open(os.path.join(blobs, sha256_hex(blob)), "wb") as f:
            f.write(blob)
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [{**descriptor(MANIFEST_TYPE, image.manifest),
                       "annotations": {"org.opencontainers.image.ref.name": tag}}],
    }
    with open(os.path.join(out_dir, "index.json"), "wb") as f:
        f.write(canonical_json(index))
    with open(os.path.join(out_dir, "oci-layout"), "wb") as f:
        f.write(canonical_json({"imageLayoutVersion": "1.0.0"}))
    return image


def summary(image, wasm_path, out_dir, tag):
    """What `make oci` prints: both digests and which WasmPlugin field each one belongs in."""
    m = image.digest.removeprefix("sha256:")
    w = image.wasm_sha256
    return "\n".join([
        f"OCI image layout {out_dir}, tag {tag}: one {LAYER_TYPE} layer holding {PLUGIN_FILE}",
        f"image digest (manifest): {image.digest}",
        f".wasm sha256:            {w}  ({wasm_path}, {len(image.wasm)} bytes)",
        "",
        "WasmPlugin `sha256` is compared with the image (manifest) digest for an oci:// url, and with",
        "the sha256 of the .wasm itself for an http(s):// url (Istio pkg/wasm/cache.go):",
        f"  url: oci://REGISTRY/apirule-wasm:{tag}        sha256: {m}",
        f"  url: oci://REGISTRY/apirule-wasm@sha256:{m}",
        f"  url: https://HOST/apirule_wasm.wasm             sha256: {w}",
        f"push: make oci-push REGISTRY=host[:port]/apirule-wasm TAG={tag}",
    ])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--wasm", required=True, help="the .wasm module")
    p.add_argument("--out", required=True, help="the OCI image layout directory to write")
    p.add_argument("--tag", required=True, help="the tag (reference name) in index.json")
    args = p.parse_args(argv)
    with open(args.wasm, "rb") as f:
        wasm = f.read()
    if wasm[:4] != b"\0asm":
        print(f"{args.wasm} is not a WebAssembly module", file=sys.stderr)
        return 1
    try:
        image = write_layout(args.out, wasm, args.tag)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 1
    print(summary(image, args.wasm, args.out, args.tag))
    return 0


if __name__ == "__main__":
    sys.exit(main())

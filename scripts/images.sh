#!/usr/bin/env bash
# `make images`: one OCI archive per binary in dist/images/, built without a
# daemon by buildah (Debian's), from scratch. PROFILE=debug builds from the
# debug binaries (what the tests check); release by default. SKIP_BUILD=1
# takes the binaries as they are.
#   scripts/images.sh [IMAGE...]     e.g. scripts/images.sh guardline-identity
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE="${PROFILE:-release}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT="${OUT:-dist/images}"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
command -v buildah >/dev/null || { echo "images: buildah is missing (apt-get install buildah)" >&2; exit 1; }
declare -A BINARY=(
  [guardline-identity]=guardline-identity [guardline-lead-vault]=guardline-lead-vault
  [guardline-dialer-policy]=guardline-dialer-policy [guardline-recordings]=guardline-recordings
  [guardline-audit]=guardline-audit [guardline-operator]=guardline-operator [guardline-cli]=guardline
)
IMAGES=("$@")
[ ${#IMAGES[@]} -gt 0 ] || IMAGES=("${!BINARY[@]}")
flag=(); [ "$PROFILE" = release ] && flag=(--release)
[ -n "${SKIP_BUILD:-}" ] || cargo build --workspace --bins --locked "${flag[@]}"
mkdir -p "$OUT"
# One CycloneDX SBOM per binary (cargo-cyclonedx writes them beside each
# package's manifest; they are moved out of the tree at once).
SBOM_DIR="$OUT/sbom"
mkdir -p "$SBOM_DIR"
CDX="${CARGO_CYCLONEDX:-.tools/bin/cargo-cyclonedx}"
"$CDX" cyclonedx --describe binaries -f json --no-build-deps -q
for f in $(git ls-files --others --exclude-standard --ignored -- '*_bin.cdx.json'); do
  mv "$f" "$SBOM_DIR/$(basename "$f" _bin.cdx.json).cdx.json"
done
B=(buildah --storage-driver vfs)
for image in "${IMAGES[@]}"; do
  bin="${BINARY[$image]:?unknown image $image}"
  ctx="$(mktemp -d)"
  trap 'rm -rf "$ctx"' EXIT
  root="$ctx/rootfs"
  mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp"
  chmod 1777 "$root/tmp"
  cp "$TARGET_DIR/$PROFILE/$bin" "$root/usr/local/bin/$bin"
  # The dynamic loader and the libraries the binary links, at their paths.
  for lib in $(ldd "$TARGET_DIR/$PROFILE/$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  mkdir -p "$root/usr/share/doc/guardline"
  cp NOTICE.md LICENSE "$root/usr/share/doc/guardline/"
  if [ -f "$SBOM_DIR/$bin.cdx.json" ]; then
    cp "$SBOM_DIR/$bin.cdx.json" "$root/usr/share/doc/guardline/sbom.cdx.json"
  fi
  echo "nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin" > "$root/etc/passwd"
  echo "nonroot:x:65532:" > "$root/etc/group"
  sed -e "s|@BINARY@|$bin|g" -e "s|@IMAGE@|$image|g" images/Containerfile.in > "$ctx/Containerfile"
  "${B[@]}" build --quiet --layers=false -f "$ctx/Containerfile" -t "localhost/$image:$VERSION" "$ctx" >/dev/null
  rm -f "$OUT/$image.oci.tar"
  "${B[@]}" push --quiet "localhost/$image:$VERSION" "oci-archive:$OUT/$image.oci.tar:$image:$VERSION"
  "${B[@]}" rmi --force "localhost/$image:$VERSION" >/dev/null
  rm -rf "$ctx"
  trap - EXIT
  echo "images: $OUT/$image.oci.tar"
done

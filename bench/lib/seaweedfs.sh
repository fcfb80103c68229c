# Sourced by the benchmarks that need an S3 server: SeaweedFS (`weed mini`) on 127.0.0.1 with one
# bucket, `lake`, and the key pair bench / bench-secret.
# start_seaweedfs WEED DIR: starts it in DIR (its volume in DIR/data), waits until the bucket is
# listed, and sets S3_PORT and WEED_PID (the caller stops it).
start_seaweedfs() {
  local weed=$1 dir=$2 p=()
  for _ in $(seq 10); do
    p+=("$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')")
  done
  mkdir -p "$dir/data"
  echo '{"identities":[{"name":"bench","credentials":[{"accessKey":"bench","secretKey":"bench-secret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}' >"$dir/s3.json"
  "$weed" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false -webdav=false \
    -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$dir/s3.json" -bucket=lake \
    -master.port="${p[0]}" -master.port.grpc="${p[1]}" -volume.port="${p[2]}" -volume.port.grpc="${p[3]}" \
    -filer.port="${p[4]}" -filer.port.grpc="${p[5]}" -s3.port="${p[6]}" -s3.port.grpc="${p[7]}" \
    -admin.port="${p[8]}" -admin.port.grpc="${p[9]}" >"$dir/weed.log" 2>&1 &
  WEED_PID=$!
  S3_PORT=${p[6]}
  until curl -s -H 'Accept: application/json' "http://127.0.0.1:${p[4]}/buckets/" | grep -q '/buckets/lake"'; do
    sleep 0.2
  done
}

# ---- lockstep boot script: what every instance of the run does (the values above are the run's) --
# It holds no credential. It reads the instance's own role credentials from instance metadata, as
# the AWS SDK does, and signs its few store requests with them (SigV4, with openssl). It needs from
# the image: bash, coreutils, curl or GNU wget, openssl, and (only when the image has no Node.js
# >= 20) tar and gzip. Every step names itself in the log; a failed step's log is uploaded to the
# store (runs/<run>/boot/<instance>.log), where `lockstep run` reads it, and the instance ends.

set -uo pipefail
WORK_DIR=/opt/lockstep
BOOT_LOG="$WORK_DIR/boot.log"
# Answers of instance metadata and the store (credentials among them) stay readable by root only.
PRIVATE="$WORK_DIR/.boot"
IMDS="${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}"
IMDS="${IMDS%/}"
NODE_MIN_MAJOR=20
STEP=start
INSTANCE_ID=''
IMDS_TOKEN=''
DOWNLOADER=''
HTTP_STATUS=''
HTTP_ERROR=''

log() {
  local line
  line="$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ) lockstep-boot: $*"
  printf '%s\n' "$line"
  [ -d "$WORK_DIR" ] && printf '%s\n' "$line" >> "$BOOT_LOG"
  return 0
}

step() {
  STEP=$1
  shift
  log "[$STEP] $*"
}

# Ends this instance in $1 minutes (0: now); instance-initiated shutdown terminates it.
power_off_in() {
  if [ "$1" -le 0 ]; then shutdown -h now "$2"; else shutdown -h "+$1" "$2"; fi
}

fail() {
  log "FAILED at step $STEP: $*"
  upload_boot_log
  if [ "$FAILURE_GRACE_MINUTES" -gt 0 ]; then
    log "ending this instance in $FAILURE_GRACE_MINUTES minutes (time to look around over SSH)"
  else
    log "ending this instance"
  fi
  power_off_in "$FAILURE_GRACE_MINUTES" "lockstep boot failed at step $STEP" >> "$BOOT_LOG" 2>&1
  exit 1
}

# ---- HTTP with curl or GNU wget ----------------------------------------------------------------
# http METHOD URL OUTPUT_FILE BODY_FILE [HEADER...]: sets HTTP_STATUS (000 when no answer) and
# HTTP_ERROR; returns 0 for a 2xx answer.
http() {
  local method=$1 url=$2 output=$3 body=$4 header
  shift 4
  HTTP_STATUS=000
  HTTP_ERROR=''
  local errors="$PRIVATE/http-errors"
  if [ "$DOWNLOADER" = curl ]; then
    local args=(-sS -X "$method" -o "$output" -w '%{http_code}' --connect-timeout 5 --max-time 600)
    [ -n "$body" ] && args+=(-T "$body")
    for header in "$@"; do args+=(-H "$header"); done
    HTTP_STATUS=$(curl "${args[@]}" "$url" 2> "$errors") || true
  else
    local args=(-q -O "$output" --server-response --content-on-error --tries=1 --timeout=30 --method="$method")
    if [ -n "$body" ]; then args+=(--body-file="$body"); elif [ "$method" = PUT ]; then args+=(--body-data=''); fi
    for header in "$@"; do args+=(--header="$header"); done
    wget "${args[@]}" "$url" 2> "$errors"
    HTTP_STATUS=$(sed -n 's/^ *HTTP\/[0-9.]* \([0-9][0-9][0-9]\).*/\1/p' "$errors" | tail -n 1)
    HTTP_STATUS=${HTTP_STATUS:-000}
  fi
  [ "${#HTTP_STATUS}" -eq 3 ] || HTTP_STATUS=000
  case "$HTTP_STATUS" in
    2??) return 0 ;;
    000) HTTP_ERROR="no answer ($(grep -v '^ ' "$errors" | tail -n 1))" ;;
    *) HTTP_ERROR="HTTP $HTTP_STATUS$(sed -n 's/.*<Code>\(.*\)<\/Code>.*/: \1/p' "$output" 2> /dev/null | head -n 1)" ;;
  esac
  return 1
}

# ---- Instance metadata (IMDSv2) ----------------------------------------------------------------
imds_token() {
  http PUT "$IMDS/latest/api/token" "$PRIVATE/imds" '' 'X-aws-ec2-metadata-token-ttl-seconds: 21600' || return 1
  IMDS_TOKEN=$(cat "$PRIVATE/imds")
}

# imds_get PATH: prints the value below /latest/meta-data/.
imds_get() {
  http GET "$IMDS/latest/meta-data/$1" "$PRIVATE/imds" '' "X-aws-ec2-metadata-token: $IMDS_TOKEN" || return 1
  cat "$PRIVATE/imds"
}

json_field() {
  sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" | head -n 1
}

# The instance role's temporary credentials, read anew for every request (they rotate).
load_credentials() {
  local role document
  role=$(imds_get iam/security-credentials/) || return 1
  role=$(printf '%s' "$role" | head -n 1)
  [ -n "$role" ] || { HTTP_ERROR='instance metadata names no role'; return 1; }
  document=$(imds_get "iam/security-credentials/$role") || return 1
  rm -f "$PRIVATE/imds"
  ACCESS_KEY_ID=$(printf '%s\n' "$document" | json_field AccessKeyId)
  SECRET_ACCESS_KEY=$(printf '%s\n' "$document" | json_field SecretAccessKey)
  SESSION_TOKEN=$(printf '%s\n' "$document" | json_field Token)
  [ -n "$ACCESS_KEY_ID" ] && [ -n "$SECRET_ACCESS_KEY" ] || { HTTP_ERROR="no credentials in the role's metadata"; return 1; }
}

# ---- S3 requests signed with AWS Signature Version 4 ----------------------------------------------
sha256_hex() {
  openssl dgst -sha256 | sed 's/^.* //'
}

# hmac_hex KEY-SPEC DATA, KEY-SPEC being `key:<text>` or `hexkey:<hex>`.
hmac_hex() {
  printf '%s' "$2" | openssl dgst -sha256 -mac HMAC -macopt "$1" | sed 's/^.* //'
}

# Percent-encodes a key path as S3 signs it: everything but A-Z a-z 0-9 - . _ ~ and /.
uri_encode_path() {
  local LC_ALL=C text=$1 out='' char i
  for ((i = 0; i < ${#text}; i++)); do
    char=${text:i:1}
    case "$char" in
      [A-Za-z0-9._~/-]) out+=$char ;;
      *) printf -v char '%%%02X' "'$char"; out+=$char ;;
    esac
  done
  printf '%s' "$out"
}

# sigv4_authorization METHOD HOST PATH AMZ_DATE REGION ACCESS_KEY_ID SECRET_ACCESS_KEY SESSION_TOKEN:
# prints the Authorization header value for an S3 request with an unsigned payload.
sigv4_authorization() {
  local method=$1 host=$2 path=$3 amz_date=$4 region=$5 key_id=$6 secret=$7 token=$8
  local day=${amz_date:0:8} nl=$'\n'
  local headers="host:$host${nl}x-amz-content-sha256:UNSIGNED-PAYLOAD${nl}x-amz-date:$amz_date${nl}"
  local signed='host;x-amz-content-sha256;x-amz-date'
  if [ -n "$token" ]; then
    headers+="x-amz-security-token:$token${nl}"
    signed+=';x-amz-security-token'
  fi
  local request="$method${nl}$path${nl}${nl}$headers${nl}$signed${nl}UNSIGNED-PAYLOAD"
  local scope="$day/$region/s3/aws4_request"
  local to_sign="AWS4-HMAC-SHA256${nl}$amz_date${nl}$scope${nl}$(printf '%s' "$request" | sha256_hex)"
  local key
  key=$(hmac_hex "key:AWS4$secret" "$day")
  key=$(hmac_hex "hexkey:$key" "$region")
  key=$(hmac_hex "hexkey:$key" s3)
  key=$(hmac_hex "hexkey:$key" aws4_request)
  printf 'AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s' "$key_id" "$scope" "$signed" "$(hmac_hex "hexkey:$key" "$to_sign")"
}

# s3_target KEY: sets S3_URL, S3_HOST and S3_PATH of a key below the store's prefix. The endpoint
# is the locator's, else AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (as the AWS SDK reads them), else
# AWS S3 in the store's region.
s3_target() {
  local path
  path=$(uri_encode_path "$STORE_PREFIX$1")
  local endpoint="${STORE_ENDPOINT:-${AWS_ENDPOINT_URL_S3:-${AWS_ENDPOINT_URL:-}}}"
  endpoint=${endpoint%/}
  if [ -n "$endpoint" ]; then
    local scheme=${endpoint%%://*} rest=${endpoint#*://}
    S3_HOST=${rest%%/*}
    if [ "$STORE_PATH_STYLE" = false ]; then
      S3_HOST="$STORE_BUCKET.$S3_HOST"
      S3_PATH="/$path"
    else
      S3_PATH="/$STORE_BUCKET/$path"
    fi
    S3_URL="$scheme://$S3_HOST$S3_PATH"
  elif [ "$STORE_PATH_STYLE" = true ] || [[ "$STORE_BUCKET" == *.* ]]; then
    S3_HOST="s3.$STORE_REGION.amazonaws.com"
    S3_PATH="/$STORE_BUCKET/$path"
    S3_URL="https://$S3_HOST$S3_PATH"
  else
    S3_HOST="$STORE_BUCKET.s3.$STORE_REGION.amazonaws.com"
    S3_PATH="/$path"
    S3_URL="https://$S3_HOST$S3_PATH"
  fi
}

# s3 METHOD KEY OUTPUT_FILE [BODY_FILE]: one signed request, tried up to 5 times while the store
# does not answer or answers 5xx/429; returns 0 for a 2xx answer (HTTP_STATUS, HTTP_ERROR as http).
s3() {
  local method=$1 key=$2 output=$3 body=${4:-} attempt amz_date authorization
  s3_target "$key"
  for attempt in 1 2 3 4 5; do
    load_credentials || return 1
    amz_date=$(date -u +%Y%m%dT%H%M%SZ)
    authorization=$(sigv4_authorization "$method" "$S3_HOST" "$S3_PATH" "$amz_date" "$STORE_REGION" "$ACCESS_KEY_ID" "$SECRET_ACCESS_KEY" "$SESSION_TOKEN")
    local headers=("Authorization: $authorization" 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "x-amz-date: $amz_date")
    [ -n "$SESSION_TOKEN" ] && headers+=("x-amz-security-token: $SESSION_TOKEN")
    http "$method" "$S3_URL" "$output" "$body" "${headers[@]}" && return 0
    case "$HTTP_STATUS" in 000 | 5?? | 429) ;; *) return 1 ;; esac
    [ "$attempt" -lt 5 ] && sleep $((attempt * attempt))
  done
  return 1
}

upload_boot_log() {
  if [ -z "$DOWNLOADER" ] || [ -z "$INSTANCE_ID" ] || ! command -v openssl > /dev/null; then
    log "cannot upload this log to the store (no curl or wget, no openssl, or no instance metadata): the EC2 console output has it"
    return 0
  fi
  tail -c 65536 "$BOOT_LOG" > "$PRIVATE/boot-log-tail"
  if s3 PUT "runs/$RUN_ID/boot/$INSTANCE_ID.log" "$PRIVATE/upload" "$PRIVATE/boot-log-tail"; then
    log "uploaded this log to the store (runs/$RUN_ID/boot/$INSTANCE_ID.log)"
  else
    log "could not upload this log to the store: $HTTP_ERROR"
  fi
}

# ---- Node.js -------------------------------------------------------------------------------------
# node_major PATH: prints the major version of a working Node.js.
node_major() {
  "$1" -e 'process.stdout.write(process.versions.node.split(".")[0])' 2> /dev/null
}

# Prints the path of a Node.js >= NODE_MIN_MAJOR on this image, if there is one.
find_node() {
  local name path major
  for name in node nodejs node-24 node24 node-22 node22 node-20 node20; do
    path=$(command -v "$name") || continue
    major=$(node_major "$path") || continue
    if [ "${major:-0}" -ge "$NODE_MIN_MAJOR" ] 2> /dev/null; then
      printf '%s' "$path"
      return 0
    fi
  done
  return 1
}

install_node_from_store() {
  [ -n "$NODE_KEY" ] || fail "this image has no Node.js >= $NODE_MIN_MAJOR, and lockstep could not put one in the store (the controller said why when it launched): use an image with Node.js >= $NODE_MIN_MAJOR, or let the controller reach https://nodejs.org (or LOCKSTEP_NODE_MIRROR)"
  local tool
  for tool in tar gzip; do
    command -v "$tool" > /dev/null || fail "this image has no Node.js >= $NODE_MIN_MAJOR and no $tool to unpack the one from the store: add $tool (or Node.js) to the image"
  done
  log "[$STEP] no Node.js >= $NODE_MIN_MAJOR on the image: fetching $NODE_DIR from the store"
  s3 GET "$NODE_KEY" "$WORK_DIR/node.tar.gz" || fail "the store refused the Node.js download ($HTTP_ERROR from $S3_URL): check that the instance profile's role may read the store's prefix"
  local sum
  sum=$(sha256_hex < "$WORK_DIR/node.tar.gz")
  [ "$sum" = "$NODE_SHA256" ] || fail "the Node.js download is damaged (SHA-256 $sum, expected $NODE_SHA256)"
  tar -xzf "$WORK_DIR/node.tar.gz" -C "$WORK_DIR" >> "$BOOT_LOG" 2>&1 || fail "could not unpack $NODE_DIR (disk full?)"
  rm -f "$WORK_DIR/node.tar.gz"
  NODE="$WORK_DIR/$NODE_DIR/bin/node"
  local major
  major=$(node_major "$NODE") || fail "$NODE_DIR does not run on this image (official Node.js builds need glibc >= 2.28): use an image with Node.js >= $NODE_MIN_MAJOR, or a newer distribution"
  [ "$major" -ge "$NODE_MIN_MAJOR" ] || fail "$NODE_DIR reports major version $major"
}

# ---- The boot ------------------------------------------------------------------------------------
main() {
  mkdir -p "$WORK_DIR" && mkdir -p -m 700 "$PRIVATE" && cd "$WORK_DIR" || {
    echo "lockstep-boot: FAILED at step start: cannot create $WORK_DIR" >&2
    exit 1
  }
  : > "$BOOT_LOG"

  # 1. Dead-man's switch: the instance ends itself at the run's expiry, whatever happens below.
  step expiry "run $RUN_ID; this instance ends itself at $(date -u -d "@$EXPIRES_EPOCH" +%Y-%m-%dT%H:%M:%SZ) at the latest"
  local minutes=$(((EXPIRES_EPOCH - $(date +%s) + 59) / 60))
  [ "$minutes" -ge 1 ] || minutes=1
  power_off_in "$minutes" "lockstep run $RUN_ID expired" >> "$BOOT_LOG" 2>&1 ||
    fail "could not schedule the power-off at the run's expiry (\`shutdown -h +$minutes\` failed): the image needs systemd's shutdown"

  # 2. What the boot needs from the image.
  step image "checking the image"
  local machine
  machine=$(uname -m)
  case "$machine" in x86_64 | amd64) machine=x86_64 ;; aarch64 | arm64) machine=arm64 ;; esac
  [ "$machine" = "$ARCHITECTURE" ] || fail "this machine is $machine but the run planned $ARCHITECTURE: use an AMI of the instance type's architecture"
  if command -v curl > /dev/null; then DOWNLOADER=curl; elif command -v wget > /dev/null; then DOWNLOADER=wget; fi
  [ -n "$DOWNLOADER" ] || fail "this image has neither curl nor wget, which the boot needs to reach the store: add curl to the image (Amazon Linux, Ubuntu and Debian AMIs have it)"
  command -v openssl > /dev/null || fail "this image has no openssl, which the boot needs to sign its store requests: add openssl to the image (Amazon Linux, Ubuntu and Debian AMIs have it)"

  # 3. Who this instance is, and its role (the credentials of every store request below).
  step metadata "reading instance metadata ($IMDS)"
  imds_token || fail "the instance metadata service did not give a token ($HTTP_ERROR): lockstep launches with IMDSv2 enabled"
  INSTANCE_ID=$(imds_get instance-id) || fail "instance metadata has no instance-id ($HTTP_ERROR)"
  if [ -z "$STORE_REGION" ]; then STORE_REGION=$(imds_get placement/region) || fail "instance metadata has no region ($HTTP_ERROR)"; fi
  load_credentials || fail "this instance has no role credentials in instance metadata ($HTTP_ERROR): launch it with lockstep's instance profile (\`lockstep aws bootstrap\`, or \`provider.iamInstanceProfile\`)"
  log "[$STEP] instance $INSTANCE_ID, role credentials found"

  # 4. Node.js: the image's own when it is recent enough, else the one lockstep put in the store.
  step node "looking for Node.js >= $NODE_MIN_MAJOR"
  if NODE=$(find_node); then
    log "[$STEP] $NODE is Node.js $("$NODE" --version) (on the image): nothing to install"
  else
    install_node_from_store
    log "[$STEP] $NODE is Node.js $("$NODE" --version) (from the store)"
  fi

  # 5. The agent bundle, and nothing else: the agent reads the run from the store.
  step agent "fetching the agent"
  s3 GET "$AGENT_KEY" "$WORK_DIR/agent.mjs" || fail "the store refused the agent download ($HTTP_ERROR from $S3_URL): check that the instance profile's role may read the store's prefix"

  # 6. The agent: it learns its identity and the run from instance metadata and tags.
  step run "starting the agent"
  export LOCKSTEP_IDENTITY=ec2 LOCKSTEP_WORKDIR="$WORK_DIR" HOME="${HOME:-/root}"
  # AGENT_NODE_OPTIONS (the run's values): V8 options without spaces inside, split into words.
  # shellcheck disable=SC2086
  "$NODE" $AGENT_NODE_OPTIONS "$WORK_DIR/agent.mjs" 2>&1 | tee -a "$BOOT_LOG"
  local status=${PIPESTATUS[0]}
  [ "$status" -eq 0 ] || fail "the agent exited with status $status"
  exit 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then main; fi

#!/usr/bin/env bash
# The script half of action.yml, runnable outside GitHub (the tests run it against a fixture
# repository and the workspace's GitHub double). Reads its settings from the environment:
#   VALIDATOR        the release-config-validate binary
#   REPO_PATH        the release-config repository (default .)
#   FAIL_ON          error | warning | never (default error)
#   COMMENT          true | false: keep one sticky comment on the pull request (default true)
#   SARIF_FILE       where the SARIF report goes (default release-config.sarif)
#   GH_TOKEN         token for the GitHub API (open pull requests, the comment)
#   EVENT_NAME, BASE_REF, BEFORE, PR_NUMBER   from the triggering event (PR_NUMBER and BASE_REF
#                    are read from GITHUB_EVENT_PATH when not given)
# and GitHub's own GITHUB_API_URL, GITHUB_REPOSITORY, GITHUB_STEP_SUMMARY, GITHUB_EVENT_PATH,
# RUNNER_TEMP.
set -euo pipefail

validator="${VALIDATOR:?VALIDATOR: the release-config-validate binary}"
repo="${REPO_PATH:-.}"
fail_on="${FAIL_ON:-error}"
sarif="${SARIF_FILE:-release-config.sarif}"
work="${RUNNER_TEMP:-/tmp}/release-config-validate-run"
mkdir -p "$work"
case "$fail_on" in error | warning | never) ;; *)
  echo "::error title=release-config-validate::fail-on must be error, warning or never, not '$fail_on'"
  exit 2
  ;;
esac
api() {
  curl --silent --show-error --fail-with-body --max-time 30 \
    -H "Authorization: Bearer $GH_TOKEN" -H "Accept: application/vnd.github+json" \
    -H "X-GitHub-Api-Version: 2022-11-28" -H "Content-Type: application/json" "$@"
}

# The pull request, from the event file GitHub writes when the caller did not say.
if [ -n "${GITHUB_EVENT_PATH:-}" ] && [ -f "$GITHUB_EVENT_PATH" ]; then
  if [ -z "${PR_NUMBER:-}" ]; then PR_NUMBER=$(jq -r '.pull_request.number // empty' "$GITHUB_EVENT_PATH"); fi
  if [ -z "${BASE_REF:-}" ]; then BASE_REF=$(jq -r '.pull_request.base.ref // empty' "$GITHUB_EVENT_PATH"); fi
fi

# The base of the comparison: the pull request's base branch, or what a pushed branch was.
base=""
if [ "${EVENT_NAME:-}" = pull_request ] && [ -n "${BASE_REF:-}" ]; then
  git -C "$repo" fetch --quiet --no-tags origin "+refs/heads/${BASE_REF}:refs/remotes/origin/${BASE_REF}"
  base="origin/$BASE_REF"
elif [ -n "${BEFORE:-}" ] && git -C "$repo" cat-file -e "${BEFORE}^{commit}" 2>/dev/null; then
  base="$BEFORE"
fi

# The other open pull requests (closed ones' claims are void; this one's own are no conflict).
refspecs=()
if [ -n "${GH_TOKEN:-}" ] && [ -n "${GITHUB_REPOSITORY:-}" ]; then
  api "${GITHUB_API_URL:-https://api.github.com}/repos/$GITHUB_REPOSITORY/pulls?state=open&per_page=100" \
    > "$work/pulls.json"
  for n in $(jq -r '.[].number' "$work/pulls.json"); do
    if [ "$n" != "${PR_NUMBER:-}" ]; then refspecs+=("+refs/pull/$n/head:refs/remotes/origin/pr/$n"); fi
  done
  if [ "${#refspecs[@]}" -gt 0 ]; then git -C "$repo" fetch --quiet --no-tags origin "${refspecs[@]}"; fi
fi
args=("$repo")
if [ -n "$base" ]; then args+=(--base "$base"); fi
if [ "${#refspecs[@]}" -gt 0 ]; then args+=(--pending 'refs/remotes/origin/pr/*'); fi

# Annotations (stdout) and the Markdown table of every finding, which becomes the job summary.
status=0
GITHUB_STEP_SUMMARY="$work/summary.md" "$validator" "${args[@]}" --format github || status=$?
if [ "$status" -ge 2 ]; then exit "$status"; fi
"$validator" "${args[@]}" --format sarif > "$sarif" || [ $? -le 1 ]
"$validator" "${args[@]}" --format json > "$work/report.json" || [ $? -le 1 ]
"$validator" "${args[@]}" --format markdown > "$work/comment.md" || [ $? -le 1 ]
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then cat "$work/summary.md" >> "$GITHUB_STEP_SUMMARY"; fi

# One sticky comment per pull request (each touched machine's GPU map before and after, new
# findings first), found again by its marker and updated in place.
marker="<!-- release-config-validate -->"
if [ "${COMMENT:-true}" = true ] && [ -n "${PR_NUMBER:-}" ] && [ -n "${GH_TOKEN:-}" ]; then
  issue="${GITHUB_API_URL:-https://api.github.com}/repos/$GITHUB_REPOSITORY/issues"
  { echo "$marker"; cat "$work/comment.md"; } | jq -Rs '{body: .}' > "$work/comment.json"
  api "$issue/$PR_NUMBER/comments?per_page=100" > "$work/comments.json"
  existing=$(jq -r --arg m "$marker" '[.[] | select(.body | startswith($m))][0].id // empty' "$work/comments.json")
  if [ -n "$existing" ]; then
    api -X PATCH "$issue/comments/$existing" --data @"$work/comment.json" > /dev/null
    echo "release-config-validate: updated comment $existing"
  else
    api -X POST "$issue/$PR_NUMBER/comments" --data @"$work/comment.json" > /dev/null
    echo "release-config-validate: commented on pull request #$PR_NUMBER"
  fi
fi

# The verdict, as fail-on asks (new findings only, in diff-aware mode).
counts=$(jq -r '(.summary.new // .summary) | "\(.errors) \(.warnings)"' "$work/report.json")
read -r errors warnings <<< "$counts"
case "$fail_on" in
  error) [ "$errors" -eq 0 ] ;;
  warning) [ "$errors" -eq 0 ] && [ "$warnings" -eq 0 ] ;;
  never) true ;;
esac

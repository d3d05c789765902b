// Keep ONE plan comment on a pull request: the first plan creates it, every
// later push edits it, and a failed plan replaces it with the failure, so the
// pull request never shows a stale plan.
//
// plan.yml runs it through actions/github-script, whose `require` resolves a
// relative path against the workspace (src/wrap-require.ts):
//
//   const run = require("./.github/scripts/plan-comment.js");
//   await run({ github, context, core });
//
// It reads the summary that the "Summarize the plan" step leaves in
// $RUNNER_TEMP/plan-summary.md; a missing file means the plan failed.
// tests/test_plan_comment.py runs it, through that same inline script, against
// a stand-in for GitHub's REST API.

"use strict";

const fs = require("node:fs");
const path = require("node:path");

// The hidden first line of our comment.
const MARKER = "<!-- homelab-tunnel plan -->";
// Who writes comments with the workflow's GITHUB_TOKEN. Matching this login,
// not just any bot, means a person or another app quoting the marker never
// has their comment overwritten (anyone with write access may edit others').
const BOT_LOGIN = "github-actions[bot]";
// GitHub refuses a comment body over 65536 characters.
const LIMIT = 60000;

function isOurs(comment) {
  return comment.user?.login === BOT_LOGIN && (comment.body ?? "").startsWith(MARKER);
}

function readSummary(runUrl) {
  const file = path.join(process.env.RUNNER_TEMP ?? "", "plan-summary.md");
  if (!fs.existsSync(file)) {
    return `### ❌ Terraform plan failed\n\nNo plan could be made; see the [run log](${runUrl}).\n`;
  }
  const summary = fs.readFileSync(file, "utf8");
  if (summary.length <= LIMIT) {
    return summary;
  }
  return `${summary.slice(0, LIMIT)}\n\n… cut; the full summary is in the [run log](${runUrl}).\n`;
}

module.exports = async function planComment({ github, context, core }) {
  const pullRequest = context.payload.pull_request;
  if (!pullRequest) {
    throw new Error(`plan-comment runs on pull_request events, not ${context.eventName}`);
  }
  const { owner, repo } = context.repo;
  // plan.yml already skips forks (no secrets there, and a read-only token);
  // this keeps the script from trying if it is ever run elsewhere. A deleted
  // fork has no head repository at all.
  if (pullRequest.head.repo?.full_name !== `${owner}/${repo}`) {
    core.info("pull request from a fork: no plan, no comment");
    return;
  }

  const runUrl = `${context.serverUrl}/${owner}/${repo}/actions/runs/${context.runId}`;
  const sha = pullRequest.head.sha.slice(0, 7);
  const summary = readSummary(runUrl);
  const body = `${MARKER}\n${summary}\n<sub>Plan of ${sha} · [run](${runUrl}) · updated on every push</sub>\n`;

  const issue_number = context.issue.number;
  const comments = await github.paginate(github.rest.issues.listComments, {
    owner,
    repo,
    issue_number,
    per_page: 100,
  });
  const previous = comments.find(isOurs);
  if (previous) {
    await github.rest.issues.updateComment({ owner, repo, comment_id: previous.id, body });
    core.info(`updated the plan comment ${previous.html_url ?? previous.id}`);
    return;
  }
  const { data: created } = await github.rest.issues.createComment({
    owner,
    repo,
    issue_number,
    body,
  });
  core.info(`created the plan comment ${created.html_url ?? created.id}`);
};

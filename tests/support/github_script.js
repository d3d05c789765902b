// A stand-in for actions/github-script, enough to run plan.yml's comment step
// outside GitHub: no npm packages, only Node's built-in fetch.
//
// As on a runner, the step's inputs arrive as INPUT_* variables (INPUT_SCRIPT,
// INPUT_GITHUB-TOKEN) and `context` is built from the GITHUB_* variables the
// way @actions/github's Context does it. The inline script runs as the body
// of an async function with github-script's argument names
// (src/async-function.ts), and `require` resolves a relative path against the
// working directory (src/wrap-require.ts). `github` is a small Octokit: the
// REST methods the comment uses, plus `paginate` following the Link header.
// A script that calls anything else fails with a TypeError, on purpose.
//
// An exception is reported as github-script reports it: ::error::, exit 1.

"use strict";

const fs = require("node:fs");
const path = require("node:path");

function input(name) {
  return (process.env[`INPUT_${name.replace(/ /g, "_").toUpperCase()}`] ?? "").trim();
}

// ---------------------------------------------------------------------------
// context, as @actions/github builds it
// ---------------------------------------------------------------------------

function makeContext() {
  const env = process.env;
  const payload = env.GITHUB_EVENT_PATH ? JSON.parse(fs.readFileSync(env.GITHUB_EVENT_PATH, "utf8")) : {};
  const [owner, repo] = (env.GITHUB_REPOSITORY ?? "").split("/");
  return {
    payload,
    eventName: env.GITHUB_EVENT_NAME,
    runId: Number.parseInt(env.GITHUB_RUN_ID, 10),
    serverUrl: env.GITHUB_SERVER_URL ?? "https://github.com",
    apiUrl: env.GITHUB_API_URL ?? "https://api.github.com",
    repo: { owner, repo },
    issue: { owner, repo, number: (payload.issue || payload.pull_request || payload).number },
  };
}

// ---------------------------------------------------------------------------
// github: the few REST methods used, with Octokit's parameter handling
// ---------------------------------------------------------------------------

class RequestError extends Error {
  constructor(method, url, status, data) {
    super(`${method} ${url}: ${status} ${data?.message ?? ""}`.trim());
    this.name = "HttpError";
    this.status = status;
  }
}

function makeGitHub(apiUrl, token) {
  async function request(method, url, body) {
    const response = await fetch(url, {
      method,
      headers: {
        accept: "application/vnd.github+json",
        authorization: `token ${token}`,
        "user-agent": "actions/github-script (stand-in)",
        ...(body === undefined ? {} : { "content-type": "application/json; charset=utf-8" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    const data = text ? JSON.parse(text) : undefined;
    if (response.status >= 400) {
      throw new RequestError(method, url, response.status, data);
    }
    return { status: response.status, url, headers: Object.fromEntries(response.headers), data };
  }

  // "GET /repos/{owner}/{repo}/..." -> a method taking one parameter object.
  // Path parameters fill the route; the rest go to the query string (GET) or
  // the JSON body, as Octokit's endpoint() does. A missing path parameter is
  // an error here, where Octokit would send a malformed URL.
  function endpoint(route) {
    const [method, template] = route.split(" ");
    return async (parameters = {}) => {
      const rest = { ...parameters };
      const pathname = template.replace(/\{(\w+)\}/g, (_, name) => {
        if (rest[name] === undefined) {
          throw new TypeError(`${route}: parameter "${name}" is missing`);
        }
        const value = encodeURIComponent(String(rest[name]));
        delete rest[name];
        return value;
      });
      const url = new URL(apiUrl.replace(/\/$/, "") + pathname);
      if (method === "GET") {
        for (const [key, value] of Object.entries(rest)) {
          url.searchParams.set(key, String(value));
        }
        return request(method, url.href);
      }
      return request(method, url.href, rest);
    };
  }

  return {
    rest: {
      issues: {
        listComments: endpoint("GET /repos/{owner}/{repo}/issues/{issue_number}/comments"),
        createComment: endpoint("POST /repos/{owner}/{repo}/issues/{issue_number}/comments"),
        updateComment: endpoint("PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}"),
      },
    },
    // @octokit/plugin-paginate-rest: first page from the method, then every
    // `rel="next"` URL of the Link header as given.
    async paginate(method, parameters) {
      const items = [];
      let response = await method(parameters);
      for (;;) {
        items.push(...response.data);
        const next = /<([^<>]+)>;\s*rel="next"/.exec(response.headers.link ?? "");
        if (!next) {
          return items;
        }
        response = await request("GET", next[1]);
      }
    },
  };
}

// ---------------------------------------------------------------------------
// core: log lines as the runner shows them
// ---------------------------------------------------------------------------

const core = {
  debug: (message) => console.log(`::debug::${message}`),
  info: (message) => console.log(message),
  notice: (message) => console.log(`::notice::${message}`),
  warning: (message) => console.log(`::warning::${message}`),
  error: (message) => console.log(`::error::${message}`),
  setFailed(message) {
    process.exitCode = 1;
    console.log(`::error::${message}`);
  },
};

function unavailable(name) {
  return new Proxy(
    {},
    {
      get() {
        throw new TypeError(`${name} is not provided by this github-script stand-in`);
      },
    },
  );
}

function wrapRequire(moduleId) {
  return require(moduleId.startsWith(".") ? path.resolve(moduleId) : moduleId);
}

async function main() {
  const github = makeGitHub(process.env.GITHUB_API_URL, input("github-token"));
  const args = {
    require: wrapRequire,
    __original_require__: require,
    github,
    octokit: github,
    context: makeContext(),
    core,
    exec: unavailable("exec"),
    glob: unavailable("glob"),
    io: unavailable("io"),
  };
  const AsyncFunction = Object.getPrototypeOf(async () => null).constructor;
  const script = new AsyncFunction(...Object.keys(args), input("script"));
  await script(...Object.values(args));
}

main().catch((error) => core.setFailed(`Unhandled error: ${error}`));

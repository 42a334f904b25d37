// The cofre status page: reads the manager's JSON API with the token the user typed in and
// redraws every few seconds. It only ever sends GETs to the origin that served it.
"use strict";

(() => {
  const POLL_MS = 3000;
  const TOKEN_KEY = "cofre.token";
  const RECENT_BACKUPS = 8;

  const $ = (id) => document.getElementById(id);

  // An element with text children only: names come from users, so never innerHTML.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  // --- formatting ------------------------------------------------------------------------------

  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i += 1;
    }
    return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
  }

  function span(seconds) {
    const s = Math.max(0, seconds);
    if (s < 90) return `${Math.round(s)} s`;
    if (s < 90 * 60) return `${Math.round(s / 60)} min`;
    if (s < 36 * 3600) return `${Math.round(s / 3600)} h`;
    if (s < 400 * 86400) return `${Math.round(s / 86400)} d`;
    return `${(s / (365 * 86400)).toFixed(1)} y`;
  }

  function ago(unix) {
    const s = Date.now() / 1000 - unix;
    return s < 5 ? "just now" : `${span(s)} ago`;
  }

  function when(unix) {
    return new Date(unix * 1000).toLocaleString();
  }

  const fixed = (v, digits) => (v === null || v === undefined ? "—" : v.toFixed(digits));
  const percent = (w) => `${Math.round(w * 100)}`;

  function badge(text, kind) {
    return el("span", { class: `badge ${kind}` }, text);
  }

  function setBig(id, text, kind) {
    const node = $(id);
    node.textContent = text;
    node.className = `big ${kind || ""}`;
  }

  // --- the API ---------------------------------------------------------------------------------

  class Refused extends Error {}

  async function get(path) {
    const token = sessionStorage.getItem(TOKEN_KEY) || "";
    const resp = await fetch(path, {
      method: "GET",
      headers: { Authorization: `Bearer ${token}` },
      cache: "no-store",
      credentials: "omit",
    });
    if (resp.status === 401) throw new Refused("token refused");
    if (!resp.ok) {
      let detail = resp.statusText;
      try {
        detail = (await resp.json()).detail || detail;
      } catch (_) {
        // not a problem document: keep the status text
      }
      throw new Error(`${path} answered ${resp.status}: ${detail}`);
    }
    return resp.json();
  }

  // --- drawing ---------------------------------------------------------------------------------

  function nodesNeeded(ov) {
    return ov.replication_factor + (ov.primary_keeps_copy ? 0 : 1);
  }

  function drawTiles(nodes, ov, drain) {
    const stats = ov.stats;
    const need = nodesNeeded(ov);
    const readyKind =
      stats.nodes_ready === stats.nodes_total ? "ok" : stats.nodes_ready < need ? "bad" : "warn";
    setBig("t-nodes", `${stats.nodes_ready} / ${stats.nodes_total}`, readyKind);
    const draining = nodes.filter((n) => n.draining).length;
    $("t-nodes-sub").textContent =
      (draining ? `${draining} draining · ` : "") + `uploads need ${need}`;

    const cap = ov.capacity;
    const used = cap.capacity_bytes ? cap.used_bytes / cap.capacity_bytes : 0;
    setBig("t-used", bytes(cap.used_bytes));
    const bar = $("t-used-bar");
    bar.style.width = `${Math.min(100, used * 100).toFixed(1)}%`;
    bar.className = `fill ${used > 0.9 ? "bad" : used > 0.75 ? "warn" : ""}`;
    $("t-used-sub").textContent =
      `of ${bytes(cap.capacity_bytes)} on ready nodes (${(used * 100).toFixed(1)}%)`;

    if (cap.growth_bytes_per_s === null) {
      setBig("t-forecast", "—");
      $("t-forecast-sub").textContent = `measuring growth (${cap.samples} samples so far)`;
    } else if (cap.full_at === null) {
      setBig("t-forecast", "not growing", "ok");
      $("t-forecast-sub").textContent = `flat over the last ${span(cap.window_s)}`;
    } else {
      const left = cap.full_at - Date.now() / 1000;
      const kind = left < 7 * 86400 ? "bad" : left < 30 * 86400 ? "warn" : "";
      setBig("t-forecast", `full in ${span(left)}`, kind);
      $("t-forecast-sub").textContent =
        `at ${bytes(cap.growth_bytes_per_s)}/s over ${span(cap.window_s)} · ${when(cap.full_at)}`;
    }

    const fsck = ov.last_fsck;
    if (fsck) {
      const bad = fsck.summary.chunks - fsck.summary.ok;
      setBig("t-health", fsck.healthy ? "healthy" : `${bad} chunks`, fsck.healthy ? "ok" : "bad");
      $("t-health-sub").textContent = `fsck ${ago(fsck.at)}`;
    } else {
      const under = stats.under_replicated_chunks;
      setBig("t-health", under ? `${under} short` : "healthy", under ? "warn" : "ok");
      $("t-health-sub").textContent = "copies on ready nodes (no fsck yet)";
    }

    setBig("t-files", `${stats.files}`);
    $("t-files-sub").textContent =
      `${stats.versions} version${stats.versions === 1 ? "" : "s"}` +
      (drain.nodes && Object.keys(drain.nodes).length ? " · drain running" : "");
  }

  function drawFormula(ov) {
    const need = nodesNeeded(ov);
    const roles = ov.primary_keeps_copy
      ? `the best is the primary, and all ${need} keep a copy`
      : `the best is the primary, which relays to the other ${need - 1} and keeps no copy`;
    $("formula").replaceChildren(
      el(
        "span",
        {},
        "Each ready, non-draining node with room is scored ",
        el("b", {}, `${percent(ov.latency_weight)}/${percent(ov.stored_bytes_weight)}`),
        " on normalised latency and normalised bytes stored:",
      ),
      el(
        "code",
        { class: "block" },
        `score = ${ov.latency_weight} × (lowest latency ÷ its latency) + ` +
          `${ov.stored_bytes_weight} × (fewest bytes stored ÷ its bytes stored)`,
      ),
      el(
        "span",
        {},
        "Lower latency and fewer bytes stored are better: each term is 1 for the best node and " +
          `smaller for the others, so the highest score wins. An upload goes to the best ${need} ` +
          `(${roles}); bytes of uploads in flight count as stored.`,
      ),
    );
  }

  function drawNodes(nodes, ov) {
    const need = nodesNeeded(ov);
    const chosen = new Set(
      nodes
        .filter((n) => n.score !== null)
        .sort((a, b) => b.score - a.score || (a.node_id < b.node_id ? -1 : 1))
        .slice(0, need)
        .map((n) => n.node_id),
    );
    const rows = nodes.map((n) => {
      const state = el(
        "td",
        { class: "state" },
        n.ready ? badge("ready", "ok") : badge("not ready", "bad"),
        n.draining ? badge("draining", "warn") : null,
        chosen.has(n.node_id) ? badge(`top ${need}`, "info") : null,
      );
      return el(
        "tr",
        {
          "data-node": n.node_id,
          class: `${chosen.has(n.node_id) ? "chosen" : ""} ${n.ready ? "" : "down"}`,
        },
        el("td", { class: "mono", title: n.url }, n.node_id),
        state,
        el("td", { class: "num" }, bytes(n.stored_bytes)),
        el("td", { class: "num" }, bytes(n.free_bytes)),
        el("td", { class: "num" }, n.chunk_count),
        el("td", { class: "num" }, n.latency_ms === null ? "—" : `${n.latency_ms.toFixed(1)} ms`),
        el("td", { class: "num" }, fixed(n.latency_term, 2)),
        el("td", { class: "num" }, fixed(n.stored_term, 2)),
        el("td", { class: "num score" }, el("b", {}, fixed(n.score, 3))),
      );
    });
    $("nodes").tBodies[0].replaceChildren(...rows);
  }

  // A node's scrub: how far its cycle is, when it last read every copy, what it found.
  function scrubCells(n) {
    if (n.scrub_enabled === null || n.scrub_enabled === false) {
      const why = n.scrub_enabled === null ? "not reported" : "off";
      return [el("td", { class: "progress", colSpan: 5 }, badge(why, "warn"))];
    }
    const done = n.scrub_cycle_progress ?? 0;
    const began = n.scrub_cycle_started_at;
    const last = n.scrub_last_full_pass_at;
    const fill = el("div", { class: "fill" });
    fill.style.width = `${(done * 100).toFixed(1)}%`;
    const at = (unix) => (unix === null ? "not yet" : ago(unix));
    const title = (unix) => (unix === null ? {} : { title: when(unix) });
    return [
      el("td", { class: "progress" }, el("div", { class: "bar" }, fill), `${Math.floor(done * 100)}%`),
      el("td", { class: "num" }, `${n.scrub_cycle_chunks} chunks, ${bytes(n.scrub_cycle_bytes)}`),
      el("td", title(began), at(began)),
      el("td", { class: "last", ...title(last) }, at(last)),
      el("td", { class: "num" }, n.scrub_cycle_s === null ? "—" : span(n.scrub_cycle_s)),
    ];
  }

  function drawScrub(nodes) {
    const rows = nodes.map((n) =>
      el(
        "tr",
        { "data-node": n.node_id },
        el("td", { class: "mono" }, n.node_id),
        scrubCells(n),
        el(
          "td",
          { class: "num found" },
          n.scrub_findings ? badge(`${n.scrub_findings}`, "bad") : "0",
        ),
      ),
    );
    $("scrub").tBodies[0].replaceChildren(...rows);
  }

  function drawBackups(files) {
    const recent = files
      .slice()
      .sort((a, b) => b.created - a.created || (a.name < b.name ? -1 : 1))
      .slice(0, RECENT_BACKUPS);
    const rows = recent.map((f) =>
      el(
        "tr",
        { "data-name": f.name },
        el("td", { class: "name mono", title: f.name }, f.name),
        el("td", { class: "num" }, f.version),
        el("td", { class: "num" }, bytes(f.size)),
        el("td", { title: when(f.created) }, ago(f.created)),
      ),
    );
    $("backups").tBodies[0].replaceChildren(...rows);
    $("backups").hidden = rows.length === 0;
    $("backups-empty").hidden = rows.length !== 0;
  }

  function kv(pairs) {
    return el(
      "dl",
      { class: "kv" },
      pairs.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]),
    );
  }

  function drawHealth(ov) {
    const fsck = ov.last_fsck;
    if (!fsck) {
      const under = ov.stats.under_replicated_chunks;
      $("health").replaceChildren(
        el(
          "p",
          { class: "note" },
          "No fsck has run since the manager started (cofre fsck runs one). " +
            "From where the catalog says copies are, on the ready nodes now: ",
        ),
        el(
          "div",
          { class: "states" },
          el(
            "div",
            { class: `state ${under ? "warn" : "ok"}` },
            el("b", {}, under),
            el("span", {}, "under-replicated"),
          ),
        ),
      );
      return;
    }
    const s = fsck.summary;
    const box = (count, label, kind) =>
      el("div", { class: `state ${count ? kind : "ok"}` }, el("b", {}, count), el("span", {}, label));
    $("health").replaceChildren(
      el(
        "div",
        { class: "states" },
        box(s.ok, "ok", "ok"),
        box(s.under_replicated, "under-replicated", "warn"),
        box(s.missing, "missing", "bad"),
        box(s.corrupt, "corrupt", "bad"),
      ),
      el(
        "p",
        { class: "note", title: when(fsck.at) },
        `Latest fsck${fsck.verify ? " (re-hashed every copy)" : ""} ${ago(fsck.at)}: ` +
          `${s.chunks} chunks of ${s.versions} versions.`,
      ),
    );
  }

  function drawDrain(drain) {
    const ids = Object.keys(drain.nodes || {}).sort();
    if (!ids.length) {
      $("drain").replaceChildren(el("p", { class: "empty" }, "No node is draining."));
      return;
    }
    const rows = ids.map((id) => {
      const d = drain.nodes[id];
      return el(
        "tr",
        { "data-node": id },
        el("td", { class: "mono" }, id),
        el("td", {}, d.done ? badge("done", "ok") : badge("moving", "warn")),
        el("td", { class: "num" }, d.chunks_left),
        el("td", { class: "num" }, bytes(d.bytes_left)),
      );
    });
    $("drain").replaceChildren(
      el(
        "table",
        {},
        el(
          "thead",
          {},
          el(
            "tr",
            {},
            el("th", {}, "Node"),
            el("th", {}, "State"),
            el("th", { class: "num" }, "Chunks left"),
            el("th", { class: "num" }, "Bytes left"),
          ),
        ),
        el("tbody", {}, rows),
      ),
    );
  }

  function drawRepair(ov) {
    const run = ov.last_repair;
    if (!run) {
      $("repair").replaceChildren(el("p", { class: "empty" }, "No repair since the manager started."));
      return;
    }
    const r = run.report;
    $("repair").replaceChildren(
      kv([
        ["When", el("span", { title: when(run.at) }, ago(run.at))],
        ["Result", r.healthy ? badge("healthy", "ok") : badge("needs attention", "bad")],
        ["Chunks checked", r.chunks],
        ["Copies lost", r.lost_copies],
        ["Copies made", r.copies_made],
        ["Stuck", r.stuck],
        ["Unrecoverable", r.unrecoverable],
      ]),
    );
  }

  // --- the loop --------------------------------------------------------------------------------

  let timer = null;
  let generation = 0;
  let shown = false;

  function showLogin(message) {
    generation += 1;
    clearTimeout(timer);
    shown = false;
    sessionStorage.removeItem(TOKEN_KEY);
    $("dashboard").hidden = true;
    $("live").hidden = true;
    $("login").hidden = false;
    $("login-button").disabled = false;
    $("login-button").textContent = "Open";
    $("login-error").textContent = message || "";
    $("login-error").hidden = !message;
    $("token").value = "";
    $("token").focus();
  }

  function setLive(ok, text) {
    $("live-dot").className = `dot ${ok ? "ok" : "bad"}`;
    $("live-text").textContent = text;
  }

  async function refresh() {
    const mine = generation;
    try {
      const [nodes, ov, files, drain] = await Promise.all([
        get("/v1/nodes"),
        get("/v1/overview"),
        get("/v1/files?versions=1"),
        get("/v1/drain"),
      ]);
      if (mine !== generation) return;
      drawTiles(nodes.nodes, ov, drain);
      drawFormula(ov);
      drawNodes(nodes.nodes, ov);
      drawScrub(nodes.nodes);
      drawBackups(files.files);
      drawHealth(ov);
      drawDrain(drain);
      drawRepair(ov);
      $("login").hidden = true;
      $("dashboard").hidden = false;
      $("live").hidden = false;
      $("banner").hidden = true;
      shown = true;
      setLive(true, `live · updated ${new Date().toLocaleTimeString()}`);
    } catch (err) {
      if (mine !== generation) return;
      if (err instanceof Refused) {
        showLogin("The manager refused this token (401 Unauthorized). Check it and try again.");
        return;
      }
      if (!shown) {
        showLogin(`Could not read the manager: ${err.message}`);
        return;
      }
      $("banner").textContent = `Cannot reach the manager (${err.message}); showing the last ` +
        "data and retrying.";
      $("banner").hidden = false;
      setLive(false, "retrying");
    }
    if (mine === generation) timer = setTimeout(refresh, POLL_MS);
  }

  function start() {
    generation += 1;
    clearTimeout(timer);
    refresh();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      if (!token) {
        $("login-error").textContent = "Enter the cluster token.";
        $("login-error").hidden = false;
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, token);
      $("login-button").disabled = true;
      $("login-button").textContent = "Checking…";
      start();
    });
    $("logout").addEventListener("click", () => showLogin(""));
    if (sessionStorage.getItem(TOKEN_KEY)) start();
    else showLogin("");
  });
})();

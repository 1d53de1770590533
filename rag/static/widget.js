/*
 * rag-chat wiki widget: one script tag gives a page a chat box over the rag-chat HTTP API.
 *
 *   <script src="http://HOST/widget.js" data-api="http://HOST" data-key="KEY" data-title="Ask the docs"></script>
 *
 * data-api defaults to the origin the script was loaded from; data-key is sent as a Bearer token.
 * Plain JavaScript without dependencies; styles live in a shadow root so the wiki's CSS and ours never
 * mix. Every text that comes from the corpus or the answer is inserted with textContent or
 * createTextNode, never parsed as HTML.
 */
(function () {
  "use strict";

  const script = document.currentScript;
  const data = (script && script.dataset) || {};
  const origin = script && script.src ? new URL(script.src, location.href).origin : location.origin;
  const config = {
    api: (data.api || origin).replace(/\/+$/, ""),
    key: data.key || "",
    title: data.title || "Ask the documents",
  };
  const MAX_TURNS = 20;

  const CSS = `
    :host { all: initial; }
    * { box-sizing: border-box; }
    .root { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000;
      font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; }
    .launcher { display: block; margin-left: auto; border: 0; border-radius: 24px; padding: 12px 18px;
      background: #0b5cad; color: #fff; font: inherit; font-weight: 600; cursor: pointer;
      box-shadow: 0 4px 14px rgba(0,0,0,.25); }
    .launcher:focus-visible, button:focus-visible, textarea:focus-visible { outline: 3px solid #f0a400; outline-offset: 2px; }
    .panel { display: flex; flex-direction: column; width: min(400px, calc(100vw - 40px));
      height: min(560px, calc(100vh - 100px)); margin-bottom: 12px; background: #fff;
      border: 1px solid #d0d7de; border-radius: 12px; box-shadow: 0 8px 30px rgba(0,0,0,.2); overflow: hidden; }
    .panel[hidden] { display: none; }
    header { display: flex; align-items: center; gap: 8px; padding: 10px 12px; background: #0b5cad; color: #fff; }
    header h2 { flex: 1; margin: 0; font-size: 15px; }
    header button { border: 0; background: transparent; color: #fff; font: inherit; cursor: pointer; padding: 4px 6px; }
    .log { flex: 1; overflow-y: auto; padding: 12px; display: flex; flex-direction: column; gap: 10px; }
    .actions { display: flex; gap: 6px; margin-top: 6px; }
    .msg.user .edit { margin-left: 8px; font: inherit; font-size: 12px; border: 0; background: none; color: #0b5cad; cursor: pointer; padding: 0; }
    .actions button { font: inherit; font-size: 12px; border: 1px solid #c9d1d9; background: #fff; border-radius: 6px; padding: 2px 8px; cursor: pointer; }
    .greeting { align-self: flex-start; background: #f1f3f5; }
    .examples { display: flex; flex-direction: column; gap: 4px; align-items: flex-start; }
    .example { font: inherit; text-align: left; border: 1px solid #c9d1d9; background: #fff; border-radius: 8px; padding: 4px 8px; cursor: pointer; }
    .msg { max-width: 92%; padding: 8px 10px; border-radius: 10px; white-space: pre-wrap; overflow-wrap: anywhere; }
    .user { align-self: flex-end; background: #ddeeff; }
    .bot { align-self: flex-start; background: #f6f8fa; border: 1px solid #e1e4e8; }
    .bot.refused .text { color: #57606a; font-style: italic; }
    .text p { margin: 0 0 8px; } .text p:last-child { margin-bottom: 0; }
    .status { color: #57606a; font-style: italic; }
    .error { color: #b42318; }
    .marker { border: 0; border-radius: 8px; padding: 0 5px; margin: 0 1px; background: #0b5cad; color: #fff;
      font: 600 11px/16px system-ui, sans-serif; vertical-align: super; cursor: pointer; }
    .sources { list-style: none; margin: 8px 0 0; padding: 0; display: flex; flex-direction: column; gap: 4px; }
    .chip { display: flex; gap: 6px; align-items: baseline; width: 100%; text-align: left; border: 1px solid #d0d7de;
      border-radius: 8px; background: #fff; padding: 4px 8px; font: inherit; font-size: 12px; cursor: pointer; }
    .chip .num { font-weight: 700; color: #0b5cad; }
    .chip .label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
    .detail { margin: 4px 0 2px; padding: 6px 8px; border-left: 3px solid #0b5cad; background: #fff; font-size: 12px; white-space: normal; }
    .detail .title { font-weight: 600; } .detail .who, .detail .where { color: #57606a; }
    .detail blockquote { margin: 6px 0 0; font-style: italic; }
    .feedback { display: flex; gap: 6px; margin-top: 6px; }
    .feedback button { border: 1px solid #d0d7de; border-radius: 6px; background: #fff; cursor: pointer; font: inherit; font-size: 12px; }
    form { display: flex; gap: 8px; padding: 10px; border-top: 1px solid #d0d7de; }
    textarea { flex: 1; resize: none; font: inherit; padding: 6px 8px; border: 1px solid #d0d7de; border-radius: 8px; }
    form button { border: 0; border-radius: 8px; padding: 0 14px; background: #0b5cad; color: #fff; font: inherit; cursor: pointer; }
    form button:disabled { background: #8c959f; cursor: default; }
    .sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
  `;

  /** An element with attributes; string children become text nodes (never HTML). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined && value !== false) node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  let uid = 0;
  const id = (prefix) => `${prefix}-${++uid}`;

  /** The server-sent events of a fetch response body: {event, data}. */
  async function* readEvents(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const lines = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) lines.push(line.slice(5).replace(/^ /, ""));
        }
        if (lines.length) yield { event, data: JSON.parse(lines.join("\n")) };
      }
    }
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) return body.error.message;
    } catch (_) {
      /* not JSON */
    }
    return `the server answered HTTP ${response.status}`;
  }

  function headers() {
    const h = { "Content-Type": "application/json" };
    if (config.key) h.Authorization = `Bearer ${config.key}`;
    return h;
  }

  /** One assistant message: streamed text with [n] chips, then numbered sources that expand. */
  class AnswerView {
    constructor(log) {
      this.citations = new Map();
      this.text = "";
      this.textBox = el("div", { class: "text" }, el("span", { class: "status" }, "Searching the documents…"));
      this.sources = el("ol", { class: "sources", "aria-label": "Sources" });
      this.node = el("div", { class: "msg bot", "aria-busy": "true" }, this.textBox, this.sources);
      log.appendChild(this.node);
    }

    addText(text) {
      this.text += text;
      this.renderText();
    }

    renderText() {
      this.textBox.replaceChildren();
      for (const paragraph of this.text.split(/\n{2,}/)) {
        const p = el("p");
        // Split on markers like [1] or [1, 2]: text parts stay text nodes, numbers become chips.
        const parts = paragraph.split(/\[(\d+(?:\s*,\s*\d+)*)\]/);
        parts.forEach((part, i) => {
          if (i % 2 === 0) {
            if (part) p.appendChild(document.createTextNode(part));
            return;
          }
          for (const n of part.split(/\s*,\s*/)) p.appendChild(this.markerChip(Number(n)));
        });
        this.textBox.appendChild(p);
      }
    }

    markerChip(n) {
      const chip = el("button", { type: "button", class: "marker", "aria-label": `Show source ${n}` }, String(n));
      chip.addEventListener("click", () => this.open(n, true));
      return chip;
    }

    addCitation(citation) {
      const known = this.citations.get(citation.marker);
      if (known) {
        // the same source again (the finished answer, or a later sentence quoting it): every quote shown
        this.showQuotes(known.detail, citation);
        return;
      }
      const detailId = id("source");
      const comment = citation.kind === "comment" && citation.author;
      const page = citation.title || citation.source;
      const where = citation.section ? `${page} › ${citation.section}` : page; // title › section
      const label = comment ? `${citation.author} (comment)` : where;
      const chip = el(
        "button",
        { type: "button", class: "chip", "aria-expanded": "false", "aria-controls": detailId, title: label },
        el("span", { class: "num" }, String(citation.marker)),
        el("span", { class: "label" }, label),
      );
      const detail = el("div", { class: "detail", id: detailId, hidden: "" });
      detail.appendChild(el("div", { class: "title" }, where));
      if (comment) {
        const meta = citation.metadata || {};
        const votes =
          meta.upvotes !== undefined ? ` (${meta.upvotes} up, ${meta.downvotes || 0} down)` : "";
        detail.appendChild(el("div", { class: "who" }, `Comment by ${citation.author}${votes}`));
      }
      if (/^https?:\/\//i.test(citation.url || "")) {
        // the page in the wiki (http(s) only: a document's `url:` never becomes a script link)
        const link = el("a", { class: "where", href: citation.url, target: "_top", rel: "noopener noreferrer" }, page);
        detail.appendChild(link);
      } else {
        detail.appendChild(el("div", { class: "where" }, citation.source));
      }
      this.showQuotes(detail, citation);
      chip.addEventListener("click", () => this.open(citation.marker, chip.getAttribute("aria-expanded") !== "true"));
      const item = el("li", { class: "source" }, chip, detail);
      this.citations.set(citation.marker, { chip, detail, item });
      const later = [...this.citations.entries()].filter(([m]) => m > citation.marker).sort((a, b) => a[0] - b[0]);
      this.sources.insertBefore(item, later.length ? later[0][1].item : null);
    }

    showQuotes(detail, citation) {
      // every sentence the answer quotes from this source, in the answer's order
      for (const old of detail.querySelectorAll("blockquote")) old.remove();
      const quotes = citation.quotes && citation.quotes.length ? citation.quotes : [citation.quote];
      for (const quote of quotes) detail.appendChild(el("blockquote", {}, `“${quote}”`));
    }

    open(n, show) {
      const entry = this.citations.get(n);
      if (!entry) return;
      entry.chip.setAttribute("aria-expanded", String(show));
      entry.detail.hidden = !show;
      if (show) entry.item.scrollIntoView({ block: "nearest" });
    }

    finish(answer) {
      this.node.removeAttribute("aria-busy");
      this.text = answer.answer;
      this.renderText();
      for (const citation of answer.citations) this.addCitation(citation);
      if (answer.refused) this.node.classList.add("refused");
    }

    stop() {
      this.node.removeAttribute("aria-busy");
      if (!this.text) this.textBox.replaceChildren();
      this.textBox.appendChild(el("p", { class: "status" }, "Stopped."));
    }

    fail(message) {
      this.node.removeAttribute("aria-busy");
      if (!this.text) this.textBox.replaceChildren();
      this.textBox.appendChild(el("p", { class: "error", role: "alert" }, `Sorry: ${message}`));
    }

    /** The answer and its sources as plain text, for the clipboard. */
    plainText(answer) {
      const lines = [answer.answer];
      if (answer.citations.length) lines.push("", "Sources:");
      for (const c of answer.citations) {
        const quotes = (c.quotes && c.quotes.length ? c.quotes : [c.quote]).map((q) => `“${q}”`).join(" … ");
        const where = /^https?:\/\//i.test(c.url || "") ? c.url : c.source;
        lines.push(`[${c.marker}] ${c.title || c.source} (${where}): ${quotes}`);
      }
      return lines.join("\n");
    }

    offerActions(answer, regenerate) {
      const box = el("div", { class: "actions" });
      const copy = el("button", { type: "button" }, "Copy");
      copy.addEventListener("click", async () => {
        try {
          await navigator.clipboard.writeText(this.plainText(answer));
          copy.textContent = "Copied";
        } catch (_) {
          copy.textContent = "Copy failed";
        }
      });
      const again = el("button", { type: "button" }, "Regenerate");
      again.addEventListener("click", () => regenerate(this));
      box.append(copy, again);
      this.node.appendChild(box);
    }

    offerFeedback(question, answer) {
      const box = el("div", { class: "feedback" });
      for (const [rating, text] of [[1, "Helpful"], [-1, "Not helpful"]]) {
        const button = el("button", { type: "button" }, text);
        button.addEventListener("click", async () => {
          for (const b of box.querySelectorAll("button")) b.disabled = true;
          const citations = answer.citations.map(({ text, ...rest }) => rest); // the passages stay on the server
          const body = JSON.stringify({ rating, question, answer: answer.answer, citations });
          let sent = false;
          try {
            sent = (await fetch(`${config.api}/v1/feedback`, { method: "POST", headers: headers(), body })).ok;
          } catch (_) {
            /* reported below */
          }
          box.replaceChildren(el("span", { class: "status" }, sent ? "Thanks for the feedback." : "The feedback could not be sent."));
        });
        box.appendChild(button);
      }
      this.node.appendChild(box);
    }
  }

  function mount() {
    const host = el("div", { "data-rag-widget": "" });
    const root = host.attachShadow({ mode: "open" });
    const panelId = id("rag-panel");
    const inputId = id("rag-question");
    const launcher = el(
      "button",
      { type: "button", class: "launcher", "aria-expanded": "false", "aria-controls": panelId, "aria-label": `Open chat: ${config.title}` },
      config.title,
    );
    const log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": "Conversation" });
    const input = el("textarea", { id: inputId, rows: "2", placeholder: "Ask a question…", autocomplete: "off" });
    const send = el("button", { type: "submit" }, "Ask");
    const form = el("form", {}, el("label", { for: inputId, class: "sr-only" }, "Your question"), input, send);
    const reset = el("button", { type: "button", "aria-label": "New conversation", title: "New conversation" }, "↺");
    const close = el("button", { type: "button", "aria-label": "Close chat", title: "Close" }, "✕");
    const panel = el(
      "section",
      { class: "panel", id: panelId, role: "dialog", "aria-label": config.title, hidden: "" },
      el("header", {}, el("h2", {}, config.title), reset, close),
      log,
      form,
    );
    root.append(el("style", {}, CSS), el("div", { class: "root" }, panel, launcher));

    const STORE = `rag-widget:${config.api}:${config.title}`;
    let turns = []; // the finished question/answer pairs, oldest first, kept in this browser across reloads
    let busy = false;
    let controller = null; // aborts the answer being streamed
    let examples = null; // the server's example questions, asked for once

    function save() {
      try {
        localStorage.setItem(STORE, JSON.stringify(turns.slice(-MAX_TURNS / 2)));
      } catch (_) {
        /* storage full or off: the conversation lives as long as the page */
      }
    }

    function history(before) {
      return turns
        .slice(0, before)
        .flatMap((t) => [{ role: "user", content: t.question }, { role: "assistant", content: t.answer.answer }])
        .slice(-MAX_TURNS);
    }

    function finished(view, question, answer, index) {
      view.finish(answer);
      view.turn = index;
      view.offerActions(answer, regenerate);
      view.offerFeedback(question, answer);
    }

    async function greet() {
      // an empty conversation opens with a greeting and questions that fit the corpus, clickable
      if (log.childElementCount) return;
      const greeting = el("div", { class: "msg greeting" }, "Ask a question about the documents.");
      log.appendChild(greeting);
      if (examples === null) {
        examples = [];
        try {
          const response = await fetch(`${config.api}/v1/examples`, { headers: headers() });
          if (response.ok) examples = ((await response.json()).questions || []).slice(0, 4);
        } catch (_) {
          examples = [];
        }
      }
      if (!examples.length || !greeting.isConnected || log.lastChild !== greeting) return;
      const list = el("div", { class: "examples" });
      for (const question of examples) {
        const button = el("button", { type: "button", class: "example" }, question);
        button.addEventListener("click", () => {
          input.value = question;
          form.requestSubmit();
        });
        list.appendChild(button);
      }
      log.appendChild(list);
    }

    function toggle(open) {
      panel.hidden = !open;
      launcher.setAttribute("aria-expanded", String(open));
      launcher.setAttribute("aria-label", `${open ? "Close" : "Open"} chat: ${config.title}`);
      (open ? input : launcher).focus();
    }

    /** Ask `question` with the conversation before turn `index`; the answer streams into `view` and
     * becomes turn `index` (a new turn, or the one it regenerates). */
    async function run(question, view, index) {
      controller = new AbortController();
      log.scrollTop = log.scrollHeight;
      let response;
      try {
        response = await fetch(`${config.api}/v1/ask/stream`, {
          method: "POST",
          headers: { ...headers(), Accept: "text/event-stream" },
          body: JSON.stringify({ question, history: history(index) }),
          signal: controller.signal,
        });
      } catch (error) {
        if (error.name === "AbortError") view.stop();
        else view.fail(`cannot reach ${config.api}`);
        return;
      }
      if (!response.ok || !response.body) {
        view.fail(await errorMessage(response));
        return;
      }
      let first = true;
      try {
        for await (const { event, data } of readEvents(response.body)) {
          if (event === "delta") {
            if (first) view.textBox.replaceChildren();
            first = false;
            view.addText(data.text);
          } else if (event === "citation") {
            view.addCitation(data);
          } else if (event === "done") {
            turns[index] = { question, answer: data };
            save();
            finished(view, question, data, index);
          } else if (event === "error") {
            view.fail(data.error.message);
          }
          log.scrollTop = log.scrollHeight;
        }
      } catch (error) {
        if (error.name === "AbortError") view.stop(); // what arrived stays
        else view.fail("the connection was interrupted");
      }
    }

    /** A question in the log, with an Edit button: the question goes back into the box, and the
     * conversation from it on is removed, to be asked again as edited. */
    function userMessage(question, index) {
      const edit = el("button", { type: "button", class: "edit", "aria-label": `Edit: ${question}` }, "Edit");
      const node = el("div", { class: "msg user" }, el("span", { class: "q" }, question), edit);
      edit.addEventListener("click", () => {
        if (busy) return;
        turns = turns.slice(0, index);
        save();
        while (node.nextSibling) node.nextSibling.remove();
        node.remove();
        input.value = question;
        input.focus();
      });
      log.appendChild(node);
    }

    async function ask(question) {
      for (const list of log.querySelectorAll(".examples")) list.remove();
      userMessage(question, turns.length);
      await run(question, new AnswerView(log), turns.length);
    }

    async function regenerate(old) {
      if (busy || old.turn === undefined) return;
      const { question } = turns[old.turn];
      const view = new AnswerView(log);
      old.node.replaceWith(view.node); // the new answer takes the old one's place
      await working(() => run(question, view, old.turn));
    }

    async function working(task) {
      busy = true;
      send.textContent = "Stop";
      try {
        await task();
      } finally {
        busy = false;
        controller = null;
        send.textContent = "Ask";
        input.focus();
      }
    }

    let stored = [];
    try {
      stored = JSON.parse(localStorage.getItem(STORE) || "[]");
    } catch (_) {
      stored = []; // unreadable or not allowed: start afresh
    }
    for (const turn of Array.isArray(stored) ? stored : []) {
      // the conversation before a reload, shown again
      if (!turn || typeof turn.question !== "string" || !turn.answer) continue;
      userMessage(turn.question, turns.length);
      turns.push(turn);
      finished(new AnswerView(log), turn.question, turn.answer, turns.length - 1);
    }

    launcher.addEventListener("click", () => {
      toggle(panel.hidden);
      if (!panel.hidden) greet();
    });
    close.addEventListener("click", () => toggle(false));
    reset.addEventListener("click", () => {
      if (controller) controller.abort();
      turns = [];
      save();
      log.replaceChildren();
      greet();
      input.focus();
    });
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") toggle(false);
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (busy) {
        if (controller) controller.abort(); // the button reads "Stop" while an answer streams
        return;
      }
      const question = input.value.trim();
      if (!question) return;
      input.value = "";
      await working(() => ask(question));
    });
    document.body.appendChild(host);
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();

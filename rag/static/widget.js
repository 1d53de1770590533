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
      if (this.citations.has(citation.marker)) return;
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
        const link = el("a", { class: "where", href: citation.url, target: "_top", rel: "noopener noreferrer" }, citation.source);
        detail.appendChild(link);
      } else {
        detail.appendChild(el("div", { class: "where" }, citation.source));
      }
      detail.appendChild(el("blockquote", {}, `“${citation.quote}”`));
      chip.addEventListener("click", () => this.open(citation.marker, chip.getAttribute("aria-expanded") !== "true"));
      const item = el("li", { class: "source" }, chip, detail);
      this.citations.set(citation.marker, { chip, detail, item });
      const later = [...this.citations.entries()].filter(([m]) => m > citation.marker).sort((a, b) => a[0] - b[0]);
      this.sources.insertBefore(item, later.length ? later[0][1].item : null);
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

    fail(message) {
      this.node.removeAttribute("aria-busy");
      if (!this.text) this.textBox.replaceChildren();
      this.textBox.appendChild(el("p", { class: "error", role: "alert" }, `Sorry: ${message}`));
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

    let history = [];
    let busy = false;

    function toggle(open) {
      panel.hidden = !open;
      launcher.setAttribute("aria-expanded", String(open));
      launcher.setAttribute("aria-label", `${open ? "Close" : "Open"} chat: ${config.title}`);
      (open ? input : launcher).focus();
    }

    async function ask(question) {
      log.appendChild(el("div", { class: "msg user" }, question));
      const view = new AnswerView(log);
      log.scrollTop = log.scrollHeight;
      let response;
      try {
        response = await fetch(`${config.api}/v1/ask/stream`, {
          method: "POST",
          headers: { ...headers(), Accept: "text/event-stream" },
          body: JSON.stringify({ question, history: history.slice(-MAX_TURNS) }),
        });
      } catch (_) {
        view.fail(`cannot reach ${config.api}`);
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
            view.finish(data);
            view.offerFeedback(question, data);
            history.push({ role: "user", content: question }, { role: "assistant", content: data.answer });
          } else if (event === "error") {
            view.fail(data.error.message);
          }
          log.scrollTop = log.scrollHeight;
        }
      } catch (_) {
        view.fail("the connection was interrupted");
      }
    }

    launcher.addEventListener("click", () => toggle(panel.hidden));
    close.addEventListener("click", () => toggle(false));
    reset.addEventListener("click", () => {
      history = [];
      log.replaceChildren();
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
      const question = input.value.trim();
      if (!question || busy) return;
      busy = true;
      send.disabled = true;
      input.value = "";
      try {
        await ask(question);
      } finally {
        busy = false;
        send.disabled = false;
        input.focus();
      }
    });
    document.body.appendChild(host);
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();

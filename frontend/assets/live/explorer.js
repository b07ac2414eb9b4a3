// The topic explorer: the tenant's topic tree growing live, in the spirit of MQTT Explorer.
//
// Subscriptions follow what the person opens, never `#`: the page starts with `+` and `+/+`
// (the first two levels); opening a branch P adds `P/+/+` (its grandchildren, so that its
// children show their own children's counts), and selecting a topic that no open branch
// covers subscribes to that topic alone. Closing a branch drops what it and its open
// descendants added. The filters never overlap, so no message arrives twice.
// The DOM is touched once per animation frame, for the rows that changed.
import { frameBatcher, matches } from "./connection.js";
import { clock, preview, renderPayload } from "./payload.js";

const HISTORY = 50;
const RATE_WINDOW = 10; // seconds over which rates are averaged
const PLACEHOLDER = "\u0001"; // a level no real topic has: tells whether `P/+` is covered
const VIRTUAL = new Set(["$roost"]); // branches one may not subscribe under as a whole

class TopicNode {
  constructor(name, parent) {
    this.name = name;
    this.parent = parent;
    this.path = parent && parent.path !== "" ? `${parent.path}/${name}` : name;
    this.depth = parent ? parent.depth + 1 : 0;
    this.children = new Map();
    this.count = 0;
    this.buckets = new Uint32Array(RATE_WINDOW);
    this.second = 0;
    this.last = null; // {payload, time, qos, retain}
    this.history = [];
    this.retained = false;
    this.expanded = false;
    this.filters = []; // what opening this branch subscribed to
    this.refused = "";
    this.el = null; // its <li>, once its parent is open
  }

  tick(second) {
    const gap = second - this.second;
    if (gap > 0) {
      for (let i = 1; i <= Math.min(gap, RATE_WINDOW); i++) this.buckets[(this.second + i) % RATE_WINDOW] = 0;
      this.second = second;
    }
  }

  rate(second) {
    this.tick(second);
    let sum = 0;
    for (let i = 0; i < RATE_WINDOW; i++) if (i !== second % RATE_WINDOW) sum += this.buckets[i];
    return sum / (RATE_WINDOW - 1);
  }
}

function formatRate(rate) {
  if (rate === 0) return "";
  return rate >= 10 ? `${Math.round(rate)}/s` : `${rate.toFixed(1)}/s`;
}

export function startExplorer(live, root) {
  new Explorer(live, root);
}

class Explorer {
  constructor(live, root) {
    this.live = live;
    this.root = root;
    this.canPublish = root.dataset.canPublish === "true";
    this.tree = new TopicNode("", null);
    this.tree.el = root.querySelector("#topic-tree");
    this.tree.expanded = true;
    this.active = new Set(); // filters subscribed now
    this.owners = new Map(); // filter -> node that asked for it
    this.dirty = new Set();
    this.selected = null;
    this.selectedFilter = null;
    this.topics = 0;
    this.messages = 0;
    this.schedule = frameBatcher(() => this.flush());
    this.detail = {
      topic: root.querySelector("#detail-topic"),
      meta: root.querySelector("#detail-meta"),
      payload: root.querySelector("#detail-payload"),
      history: root.querySelector("#history tbody"),
      clear: root.querySelector("#clear-retained"),
      clearResult: root.querySelector("#clear-result"),
    };
    this.summary = document.getElementById("explorer-summary");
    this.subscriptionList = root.querySelector("#explorer-subscriptions");

    const seed = JSON.parse(document.getElementById("explorer-seed")?.textContent || "{}");
    for (const topic of seed.topics || []) this.ensure(topic).retained = true;
    for (const topic of seed.branches || []) this.ensure(topic);

    live.onMessage((topic, payload, packet) => this.receive(topic, payload, packet));
    this.subscribe(this.tree, ["+", "+/+"]);
    this.tree.el.addEventListener("click", (event) => this.click(event));
    this.bindPublish();
    this.detail.clear?.addEventListener("click", () => this.clearRetained());
    setInterval(() => this.refreshRates(), 1000);

    const wanted = root.dataset.topic;
    if (wanted) this.select(this.ensure(wanted), true);
    this.schedule();
  }

  // The tree ---------------------------------------------------------------------------------

  ensure(topic) {
    let node = this.tree;
    for (const level of topic.split("/")) {
      let child = node.children.get(level);
      if (!child) {
        child = new TopicNode(level, node);
        node.children.set(level, child);
        this.topics += 1;
        if (node.expanded) this.dirty.add(child); // drawn at the next frame
        if (node.el) this.dirty.add(node); // its twisty appears
      }
      node = child;
    }
    return node;
  }

  receive(topic, payload, packet) {
    if (topic.startsWith("$roost/") && !this.covered(topic)) return; // the indicator's own business
    const node = this.ensure(topic);
    const now = Date.now();
    const second = Math.floor(now / 1000);
    const entry = { payload, time: now, qos: packet.qos, retain: packet.retain };
    node.last = entry;
    if (packet.retain) node.retained = payload.length > 0;
    else if (!payload.length) node.retained = false; // an empty retained message clears it
    node.history.push(entry);
    if (node.history.length > HISTORY) node.history.shift();
    for (let n = node; n; n = n.parent) {
      n.tick(second);
      n.buckets[second % RATE_WINDOW] += 1;
      n.count += 1;
      if (n.el || n === node) this.dirty.add(n);
    }
    this.messages += 1;
    this.schedule();
  }

  covered(topic) {
    for (const filter of this.active) if (matches(filter, topic)) return true;
    return false;
  }

  subscribe(node, filters) {
    const fresh = filters.filter((f) => !this.active.has(f));
    for (const filter of fresh) {
      this.active.add(filter);
      this.owners.set(filter, node);
    }
    node.filters.push(...fresh);
    this.pending(fresh.length);
    this.live.subscribe(fresh, (filter, granted, reason) => {
      this.pending(-1);
      const owner = this.owners.get(filter);
      if (owner && !granted) {
        owner.refused = `subscription to ${filter} refused: ${reason}`;
        this.dirty.add(owner);
        this.schedule();
      }
    });
    this.showSubscriptions();
  }

  // How many subscriptions await the broker's answer, on the element (tests wait for 0).
  pending(change) {
    this.waiting = (this.waiting || 0) + change;
    this.root.dataset.pending = String(this.waiting);
  }

  unsubscribe(node) {
    if (!node.filters.length) return;
    for (const filter of node.filters) {
      this.active.delete(filter);
      this.owners.delete(filter);
    }
    this.live.unsubscribe(node.filters);
    node.filters = [];
    this.showSubscriptions();
  }

  expand(node) {
    if (node.expanded) return;
    node.expanded = true;
    if (!VIRTUAL.has(node.path)) {
      const wanted = [];
      if (!this.covered(`${node.path}/${PLACEHOLDER}`)) wanted.push(`${node.path}/+`);
      wanted.push(`${node.path}/+/+`);
      this.subscribe(node, wanted);
    }
    for (const child of node.children.values()) this.dirty.add(child);
    this.dirty.add(node);
    this.followSelected();
    this.schedule();
  }

  collapse(node) {
    if (!node.expanded) return;
    const close = (n) => {
      for (const child of n.children.values()) if (child.expanded) close(child);
      this.unsubscribe(n);
      n.expanded = false;
    };
    close(node);
    this.dirty.add(node);
    this.followSelected();
    this.schedule();
  }

  // The selected topic gets a subscription of its own only while no open branch covers it.
  followSelected() {
    const node = this.selected;
    if (this.selectedFilter && (!node || this.coveredWithout(node.path, this.selectedFilter))) {
      this.active.delete(this.selectedFilter);
      this.live.unsubscribe([this.selectedFilter]);
      this.selectedFilter = null;
    }
    if (node && !this.selectedFilter && !this.covered(node.path)) {
      this.selectedFilter = node.path;
      this.active.add(node.path);
      this.pending(1);
      this.live.subscribe([node.path], () => this.pending(-1));
    }
    this.showSubscriptions();
  }

  coveredWithout(topic, skip) {
    for (const filter of this.active) if (filter !== skip && matches(filter, topic)) return true;
    return false;
  }

  select(node, reveal = false) {
    const previous = this.selected;
    this.selected = node;
    if (previous) this.dirty.add(previous);
    this.dirty.add(node);
    if (reveal) for (let n = node.parent; n && n !== this.tree; n = n.parent) this.expandQuietly(n);
    this.followSelected();
    const topicField = this.root.querySelector("#publish-topic");
    if (topicField && !topicField.dataset.touched) topicField.value = node.path;
    this.renderDetail();
    this.schedule();
  }

  expandQuietly(node) {
    // Revealing a deep-linked topic opens its ancestors from the top down.
    if (node.parent && node.parent !== this.tree) this.expandQuietly(node.parent);
    this.expand(node);
  }

  click(event) {
    const target = event.target instanceof Element ? event.target : null;
    const item = target?.closest("li[data-topic]");
    if (!item) return;
    const node = this.find(item.dataset.topic);
    if (!node) return;
    if (target.closest(".twisty")) {
      if (node.expanded) this.collapse(node);
      else this.expand(node);
    } else if (target.closest(".node-name")) {
      this.select(node);
    }
  }

  find(topic) {
    let node = this.tree;
    for (const level of topic.split("/")) {
      node = node.children.get(level);
      if (!node) return null;
    }
    return node;
  }

  // Drawing ----------------------------------------------------------------------------------

  flush() {
    const dirty = this.dirty;
    this.dirty = new Set();
    const second = Math.floor(Date.now() / 1000);
    for (const node of dirty) {
      if (node !== this.tree && this.mount(node)) this.draw(node, second);
    }
    if (this.selected && dirty.has(this.selected)) this.renderDetail();
    if (this.summary) {
      this.summary.textContent = `${this.topics} topic${this.topics === 1 ? "" : "s"} known · ` +
        `${this.messages} message${this.messages === 1 ? "" : "s"} since the page opened · ` +
        `${formatRate(this.tree.rate(second)) || "0/s"}`;
    }
  }

  // Whether the node has a row, drawing its ancestors' rows first where they are open.
  mount(node) {
    if (node === this.tree || node.el) return true;
    if (!node.parent.expanded || !this.mount(node.parent)) return false;
    this.insert(node);
    if (node.parent !== this.tree) this.draw(node.parent, Math.floor(Date.now() / 1000));
    return true;
  }

  insert(node) {
    const li = document.createElement("li");
    li.dataset.topic = node.path;
    li.setAttribute("role", "treeitem");
    li.innerHTML = `<div class="node-row"><button type="button" class="twisty"></button>` +
      `<button type="button" class="node-name"></button><span class="badge retained" title="retained" hidden>R</span>` +
      `<span class="node-value"></span><span class="node-stats"><span class="count"></span> <span class="rate"></span></span>` +
      `<span class="node-refused"></span></div><ul role="group" hidden></ul>`;
    li.querySelector(".node-name").textContent = node.name || "(empty level)";
    node.el = li;
    // Children stay sorted by name; an arriving topic slots into place.
    const list = node.parent === this.tree ? this.tree.el : node.parent.el.querySelector(":scope > ul");
    let before = null;
    for (const sibling of list.children) {
      if (sibling.dataset.topic.split("/").pop() > node.name) {
        before = sibling;
        break;
      }
    }
    list.insertBefore(li, before);
  }

  draw(node, second) {
    const li = node.el;
    const row = li.firstElementChild;
    const open = node.expanded;
    li.setAttribute("aria-expanded", String(open));
    li.classList.toggle("selected", node === this.selected);
    const twisty = row.querySelector(".twisty");
    twisty.textContent = open ? "▾" : "▸";
    // Dimmed: nothing seen beneath yet (its open parent watches its children for it).
    twisty.classList.toggle("leaf", !node.children.size && !VIRTUAL.has(node.path));
    twisty.setAttribute("aria-label", `${open ? "Close" : "Open"} ${node.path}`);
    const group = li.querySelector(":scope > ul");
    if (group.hidden === open) {
      group.hidden = !open;
      if (!open) {
        // A closed branch forgets its rows; they are drawn again when it opens.
        const drop = (n) => {
          for (const child of n.children.values()) {
            if (child.el) drop(child);
            child.el = null;
          }
        };
        drop(node);
        group.replaceChildren();
      }
    }
    row.querySelector(".retained").hidden = !node.retained;
    row.querySelector(".node-value").textContent = node.last ? preview(node.last.payload, 60) : "";
    row.querySelector(".count").textContent = node.count ? String(node.count) : "";
    const rate = formatRate(node.rate(second));
    row.querySelector(".rate").textContent = rate && `· ${rate}`;
    row.querySelector(".node-refused").textContent = node.refused;
  }

  refreshRates() {
    const visit = (node) => {
      for (const child of node.children.values()) {
        if (!child.el) continue;
        if (child.count) this.dirty.add(child);
        if (child.expanded) visit(child);
      }
    };
    visit(this.tree);
    this.schedule();
  }

  renderDetail() {
    const node = this.selected;
    const d = this.detail;
    if (!node || !d.topic) return;
    d.topic.textContent = node.path;
    this.root.querySelector("#detail-history").hidden = false;
    const last = node.last;
    if (!last) {
      d.meta.textContent = node.retained ? "Retained; waiting for its value…" : "No message seen yet; waiting…";
      d.payload.textContent = "";
      d.payload.dataset.kind = "";
    } else {
      const shown = renderPayload(last.payload);
      d.meta.textContent = `${clock(new Date(last.time))} · QoS ${last.qos} · ${last.payload.length} bytes · ` +
        `${shown.kind}${node.retained ? " · retained" : ""}`;
      d.payload.textContent = shown.text;
      d.payload.dataset.kind = shown.kind;
    }
    if (d.clear) d.clear.hidden = !(this.canPublish && node.retained);
    const rows = [];
    for (let i = node.history.length - 1; i >= 0; i--) {
      const entry = node.history[i];
      const tr = document.createElement("tr");
      for (const text of [clock(new Date(entry.time)), String(entry.qos), entry.retain ? "retained" : "",
        preview(entry.payload, 120)]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      rows.push(tr);
    }
    d.history.replaceChildren(...rows);
  }

  showSubscriptions() {
    if (this.subscriptionList) this.subscriptionList.textContent = [...this.active].join("  ") || "nothing";
  }

  // Publishing -------------------------------------------------------------------------------

  bindPublish() {
    const form = this.root.querySelector("#publish-form");
    if (!form) return;
    const result = form.querySelector("#publish-result");
    form.querySelector("#publish-topic").addEventListener("input", (e) => { e.target.dataset.touched = "1"; });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const qos = Number(data.get("qos"));
      result.dataset.outcome = "pending";
      result.textContent = "Publishing…";
      try {
        const answer = await this.live.publish(String(data.get("topic")), String(data.get("payload")),
          { qos, retain: data.get("retain") === "on" });
        result.dataset.outcome = "accepted";
        result.textContent = `Accepted by the broker: ${answer}`;
      } catch (error) {
        result.dataset.outcome = "refused";
        result.textContent = `Refused by the broker: ${error.message}`;
      }
    });
  }

  async clearRetained() {
    const node = this.selected;
    const out = this.detail.clearResult;
    if (!node) return;
    try {
      const answer = await this.live.publish(node.path, "", { qos: 1, retain: true });
      out.textContent = `Cleared: ${answer}`;
      node.retained = false;
    } catch (error) {
      out.textContent = `Not cleared: ${error.message}`;
    }
    this.dirty.add(node);
    this.schedule();
  }
}

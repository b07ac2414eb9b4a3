// One shared MQTT.js connection per page, and the indicator that says how it is doing.
import mqtt from "mqtt";

// CONNACK and DISCONNECT reason codes of MQTT 5 (and the 3.1.1 return codes below 6), as a
// person reads them in the indicator.
const REASONS = {
  0x00: "Success", 0x01: "Unacceptable protocol version", 0x02: "Identifier rejected",
  0x03: "Server unavailable", 0x04: "Bad user name or password", 0x05: "Not authorized",
  0x10: "No matching subscribers", 0x80: "Unspecified error",
  0x81: "Malformed packet", 0x82: "Protocol error", 0x83: "Implementation specific error",
  0x84: "Unsupported protocol version", 0x85: "Client identifier not valid",
  0x86: "Bad user name or password (name the tenant)", 0x87: "Not authorized", 0x88: "Server unavailable",
  0x89: "Server busy", 0x8a: "Banned", 0x8b: "Server shutting down", 0x8c: "Bad authentication method",
  0x8d: "Keep alive timeout", 0x8e: "Session taken over", 0x8f: "Topic filter invalid",
  0x90: "Topic name invalid", 0x91: "Packet identifier in use", 0x93: "Receive maximum exceeded",
  0x94: "Topic alias invalid", 0x95: "Packet too large", 0x96: "Message rate too high",
  0x97: "Quota exceeded (too many connections)", 0x98: "Administrative action", 0x99: "Payload format invalid",
  0x9a: "Retain not supported", 0x9b: "QoS not supported", 0x9c: "Use another server",
  0x9d: "Server moved", 0x9e: "Shared subscriptions not supported", 0x9f: "Connection rate exceeded",
  0xa0: "Maximum connect time", 0xa1: "Subscription identifiers not supported",
  0xa2: "Wildcard subscriptions not supported",
};

const RETRY = 3000; // ms between reconnection attempts
const RETRY_REFUSED = 30000; // after a refusal that will not go away by itself soon
const REFUSED_FOR_LONG = new Set([0x86, 0x87, 0x97]);

export function reasonText(code) {
  const hex = `0x${code.toString(16).padStart(2, "0")}`;
  return `${REASONS[code] || "Reason"} (${hex})`;
}

export class LiveConnection {
  constructor(tenant, indicator) {
    this.indicator = indicator;
    this.listeners = new Set();
    this.subscriptions = new Map(); // filter -> number of users
    this.refusal = "";
    const url = location.origin.replace(/^http/, "ws") + "/mqtt";
    this.client = mqtt.connect(url, {
      protocolVersion: 5,
      username: tenant,
      reconnectPeriod: RETRY,
      connectTimeout: 10000,
      clean: true,
      resubscribe: true,
    });
    this.state("connecting", "Connecting…");
    this.client.on("connect", () => {
      this.refusal = "";
      this.client.options.reconnectPeriod = RETRY;
      this.state("connected", "Live: connected");
    });
    this.client.on("error", (error) => {
      // A refused CONNACK (or a protocol error): keep the reason until a connection succeeds.
      if (typeof error.code === "number") this.refusal = reasonText(error.code);
      else this.refusal = error.message || "error";
      // Signed out, not a member, too many tabs: asking every few seconds would not help.
      if (REFUSED_FOR_LONG.has(error.code)) this.client.options.reconnectPeriod = RETRY_REFUSED;
      this.state("refused", `Live: refused — ${this.refusal}`);
    });
    this.client.on("disconnect", (packet) => {
      const code = packet.reasonCode ?? 0;
      const why = packet.properties?.reasonString;
      this.refusal = reasonText(code) + (why ? `: ${why}` : "");
      this.state("refused", `Live: disconnected — ${this.refusal}`);
    });
    this.client.on("offline", () => {
      if (!this.refusal) this.state("reconnecting", "Live: reconnecting…");
    });
    this.client.on("reconnect", () => {
      this.state(this.refusal ? "refused" : "reconnecting",
        this.refusal ? `Live: refused — ${this.refusal}; retrying…` : "Live: reconnecting…");
    });
    this.client.on("message", (topic, payload, packet) => {
      for (const listener of this.listeners) listener(topic, payload, packet);
    });
  }

  state(name, text) {
    const el = this.indicator;
    el.hidden = false;
    el.dataset.state = name;
    el.querySelector(".label").textContent = text;
    el.title = text;
  }

  get connected() {
    return this.client.connected;
  }

  onMessage(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // Reference-counted subscriptions: two parts of a page asking for the same filter share it.
  // `done(granted)` is told per filter whether the broker granted it (false: refused).
  subscribe(filters, done) {
    const fresh = [];
    for (const filter of filters) {
      const users = this.subscriptions.get(filter) || 0;
      this.subscriptions.set(filter, users + 1);
      if (users === 0) fresh.push(filter);
      else if (done) done(filter, true, "already subscribed");
    }
    if (!fresh.length) return;
    // QoS 0: a page watching a fleet wants the newest messages, not a backlog the broker must
    // hold for it; a browser that falls far behind loses messages, never slows the devices.
    this.client.subscribe(fresh, { qos: 0 }, (error, granted) => {
      if (!done) return;
      if (error) {
        for (const filter of fresh) done(filter, false, error.message);
        return;
      }
      for (const grant of granted || []) done(grant.topic, grant.qos < 0x80, reasonText(grant.qos));
    });
  }

  unsubscribe(filters) {
    const gone = [];
    for (const filter of filters) {
      const users = (this.subscriptions.get(filter) || 0) - 1;
      if (users > 0) this.subscriptions.set(filter, users);
      else if (this.subscriptions.delete(filter)) gone.push(filter);
    }
    if (gone.length) this.client.unsubscribe(gone);
  }

  // Resolves with the acknowledgement's reason: "Success (0x00)", or rejects with the refusal.
  publish(topic, payload, { qos = 1, retain = false } = {}) {
    return new Promise((resolve, reject) => {
      this.client.publish(topic, payload, { qos, retain }, (error, packet) => {
        if (error) {
          const code = typeof error.code === "number" ? error.code : packet?.reasonCode;
          reject(new Error(typeof code === "number" ? reasonText(code) : error.message));
          return;
        }
        if (qos === 0) resolve("sent (QoS 0: no acknowledgement)");
        else resolve(reasonText(packet?.reasonCode ?? 0));
      });
    });
  }
}

// Whether an MQTT topic filter matches a topic name ($-topics only by filters naming them).
export function matches(filter, topic) {
  const f = filter.split("/");
  const t = topic.split("/");
  if (topic.startsWith("$") && (f[0] === "+" || f[0] === "#")) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

// Call `flush` once per animation frame at most, however often `schedule` is called.
export function frameBatcher(flush) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      flush();
    });
  };
}

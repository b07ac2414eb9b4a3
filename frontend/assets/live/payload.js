// How a payload reads to a person: pretty JSON, text, or a hex dump of the first bytes.
const utf8 = new TextDecoder("utf-8", { fatal: true });
const HEX_BYTES = 256;

export function decodeText(bytes) {
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}

export function hexDump(bytes) {
  const lines = [];
  const shown = bytes.subarray(0, HEX_BYTES);
  for (let offset = 0; offset < shown.length; offset += 16) {
    const row = Array.from(shown.subarray(offset, offset + 16), (b) => b.toString(16).padStart(2, "0"));
    lines.push(`${offset.toString(16).padStart(4, "0")}  ${row.join(" ")}`);
  }
  if (bytes.length > HEX_BYTES) lines.push(`… ${bytes.length - HEX_BYTES} more bytes`);
  return lines.join("\n");
}

// {kind: "json"|"text"|"hex"|"empty", text, value (the parsed JSON, if any)}
export function renderPayload(bytes) {
  if (!bytes.length) return { kind: "empty", text: "(empty)" };
  const text = decodeText(bytes);
  if (text === null) return { kind: "hex", text: hexDump(bytes) };
  const trimmed = text.trim();
  if (trimmed && "{[\"".includes(trimmed[0]) || /^-?\d/.test(trimmed) || ["true", "false", "null"].includes(trimmed)) {
    try {
      const value = JSON.parse(trimmed);
      return { kind: "json", text: JSON.stringify(value, null, 2), value };
    } catch {
      // not JSON after all: shown as text
    }
  }
  return { kind: "text", text };
}

// A one-line preview for the tree and the history.
export function preview(bytes, max = 80) {
  if (!bytes.length) return "(empty)";
  const text = decodeText(bytes);
  if (text === null) return `${bytes.length} bytes (binary)`;
  const flat = text.replace(/\s+/g, " ");
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

export function clock(date) {
  return date.toLocaleTimeString([], { hour12: false }) + "." + String(date.getMilliseconds()).padStart(3, "0");
}

// Screenshots of the X display the app runs on (Xvfb), taken with `xwd`
// and written as PNG: a picture of the real window that does not depend on
// the WebDriver's screenshot command.
import { execFileSync } from "node:child_process";
import { crc32, deflateSync } from "node:zlib";

/** True where `xwd` can be run. */
export function xwdAvailable() {
  try {
    execFileSync("xwd", ["-version"], { stdio: "ignore" });
    return true;
  } catch (e) {
    return e?.code !== "ENOENT";
  }
}

/** PNG bytes of the whole X display `display` (e.g. ":99"). */
export function screenshotPng(display) {
  const xwd = execFileSync("xwd", ["-root", "-silent", "-display", display], { maxBuffer: 256 * 1024 * 1024 });
  return xwdToPng(xwd);
}

/** Converts an XWD image (ZPixmap, 24 or 32 bits per pixel, true colour) to PNG. */
export function xwdToPng(buf) {
  const be = (i) => buf.readUInt32BE(i * 4);
  const headerSize = be(0);
  const format = be(2);
  const width = be(4);
  const height = be(5);
  const byteOrder = be(7); // 0: LSB first
  const bitsPerPixel = be(11);
  const bytesPerLine = be(12);
  const redMask = be(14);
  const greenMask = be(15);
  const blueMask = be(16);
  const ncolors = be(19);
  if (format !== 2 || (bitsPerPixel !== 32 && bitsPerPixel !== 24)) {
    throw new Error(`xwd: unsupported image (format ${format}, ${bitsPerPixel} bits per pixel)`);
  }
  const shift = (mask) => (mask ? 31 - Math.clz32(mask & -mask) : 0);
  const [rs, gs, bs] = [shift(redMask), shift(greenMask), shift(blueMask)];
  const data = headerSize + ncolors * 12;
  const bpp = bitsPerPixel / 8;
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = data + y * bytesPerLine;
    const out = y * (width * 3 + 1);
    raw[out] = 0;
    for (let x = 0; x < width; x++) {
      const p = row + x * bpp;
      let v;
      if (bpp === 4) v = byteOrder === 0 ? buf.readUInt32LE(p) : buf.readUInt32BE(p);
      else v = byteOrder === 0 ? buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) : (buf[p] << 16) | (buf[p + 1] << 8) | buf[p + 2];
      const o = out + 1 + x * 3;
      raw[o] = (v & redMask) >>> rs;
      raw[o + 1] = (v & greenMask) >>> gs;
      raw[o + 2] = (v & blueMask) >>> bs;
    }
  }
  const chunk = (type, body) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    const tb = Buffer.concat([Buffer.from(type, "ascii"), body]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(tb) >>> 0);
    return Buffer.concat([len, tb, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

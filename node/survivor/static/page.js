/* The survivor's page: pick photos, fingerprint them here, send only the fingerprints.
 *
 * No request is made while photos are read and hashed: files are read with the File API,
 * decoded with createImageBitmap, drawn on a canvas that is never shown or exported, and
 * hashed by the signals in signals.js. Only "Send" and "Take back" talk to the hub, and only
 * with JSON. Nothing is stored on the device (no cookies, no localStorage).
 */
(function () {
  "use strict";

  var MAX_FILE_BYTES = 64 * 1024 * 1024; // blindmatch.node.hashing.MAX_FILE_BYTES
  var MAX_PIXELS = BlindmatchPDQ.MAX_PIXELS;
  var MIN_SIDE = BlindmatchPDQ.MIN_SIDE;
  var QUALITY_THRESHOLD = BlindmatchPDQ.QUALITY_THRESHOLD;
  var MAX_PHOTOS = 100;
  var MAX_PROTECTED_PHOTOS = 20; // blindmatch.node.survivor.routes.MAX_PROTECTED_ITEMS
  var PROTECTED = "protected-source";
  // Must match blindmatch.node.survivor.routes.CATEGORIES: [wire name, label, help or null].
  var CATEGORIES = [
    ["ncii", "A real intimate photo of me, shared or at risk of being shared without my consent", null],
    ["ncii-synthetic", "A fake or edited intimate image of me (for example made with AI)", null],
    [
      PROTECTED,
      "An ordinary photo of me that I want to protect from being edited into a fake",
      "For example a clothed photo someone could put through a \u201cnudify\u201d app. This page " +
        "also makes fingerprints of parts of the photo, so a copy where some parts were changed " +
        "can still be recognised by the parts that were not. This takes a few seconds a photo. " +
        "Up to " + MAX_PROTECTED_PHOTOS + " photos at a time.",
    ],
  ];

  var $ = function (id) {
    return document.getElementById(id);
  };
  var entries = []; // {name, state: "working"|"ok"|"error", hashes, code, li}
  var busy = false;
  var sent = false;
  var sending = false;
  var offline = location.protocol === "file:";

  function setBusy(value) {
    busy = value;
    document.body.setAttribute("data-busy", value ? "1" : "0");
  }

  function say(el, text, isError) {
    el.textContent = text;
    el.classList.toggle("error", !!isError);
  }

  function PageError(code, message) {
    this.code = code;
    this.message = message;
  }

  // ---- What kind of file is this? (magic bytes and declared size, before decoding) -------
  function u16be(b, i) {
    return (b[i] << 8) | b[i + 1];
  }
  function u16le(b, i) {
    return b[i] | (b[i + 1] << 8);
  }
  function u24le(b, i) {
    return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16);
  }
  function u32be(b, i) {
    return ((b[i] << 24) >>> 0) + (b[i + 1] << 16) + (b[i + 2] << 8) + b[i + 3];
  }
  function u32le(b, i) {
    return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16)) + ((b[i + 3] << 24) >>> 0);
  }
  function ascii(b, i, n) {
    var s = "";
    for (var k = 0; k < n && i + k < b.length; k++) s += String.fromCharCode(b[i + k]);
    return s;
  }

  function sniff(b) {
    if (b.length >= 24 && u32be(b, 0) === 0x89504e47 && u32be(b, 4) === 0x0d0a1a0a) {
      var complete = false;
      for (var i = b.length - 8; i >= Math.max(8, b.length - 4096); i--) {
        if (b[i] === 0x49 && b[i + 1] === 0x45 && b[i + 2] === 0x4e && b[i + 3] === 0x44) {
          complete = true;
          break;
        }
      }
      return { format: "PNG", width: u32be(b, 16), height: u32be(b, 20), complete: complete };
    }
    if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) {
      var p = 2;
      while (p + 9 < b.length) {
        if (b[p] !== 0xff) break;
        while (b[p] === 0xff && p < b.length) p++;
        var m = b[p];
        p++;
        if (m === 0xd8 || (m >= 0xd0 && m <= 0xd7) || m === 0x01) continue;
        if (m === 0xd9 || m === 0xda) break;
        var len = u16be(b, p);
        if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
          return { format: "JPEG", height: u16be(b, p + 3), width: u16be(b, p + 5), complete: true };
        }
        p += len;
      }
      return { format: "JPEG", width: 0, height: 0, complete: true };
    }
    var head = ascii(b, 0, 6);
    if (head === "GIF87a" || head === "GIF89a") {
      return { format: "GIF", width: u16le(b, 6), height: u16le(b, 8), complete: b[b.length - 1] === 0x3b };
    }
    if (ascii(b, 0, 4) === "RIFF" && ascii(b, 8, 4) === "WEBP") {
      var kind = ascii(b, 12, 4), w = 0, h = 0;
      if (kind === "VP8 " && b.length >= 30) {
        w = u16le(b, 26) & 0x3fff;
        h = u16le(b, 28) & 0x3fff;
      } else if (kind === "VP8L" && b.length >= 25) {
        w = 1 + (b[21] | ((b[22] & 0x3f) << 8));
        h = 1 + ((b[22] >> 6) | (b[23] << 2) | ((b[24] & 0x0f) << 10));
      } else if (kind === "VP8X" && b.length >= 30) {
        w = 1 + u24le(b, 24);
        h = 1 + u24le(b, 27);
      }
      return { format: "WEBP", width: w, height: h, complete: b.length >= u32le(b, 4) + 8 };
    }
    if (ascii(b, 0, 2) === "BM" && b.length >= 26) {
      var bh = u32le(b, 22);
      if (bh > 0x7fffffff) bh = 0x100000000 - bh;
      return { format: "BMP", width: u32le(b, 18), height: bh, complete: b.length >= u32le(b, 2) };
    }
    var tiff = ascii(b, 0, 4);
    if (tiff === "II*\u0000" || tiff === "MM\u0000*") return { format: "TIFF" };
    return null;
  }

  // ---- EXIF orientation ---------------------------------------------------------------------
  // Browsers turn a picture upright as its EXIF orientation says; Pillow, and so the hub and
  // every platform hashing uploads, hashes the pixels as stored. The page reads the tag and
  // turns the decoded pixels back (an exact permutation) so the fingerprint is the stored
  // picture's, as everywhere else.
  function tiffOrientation(b, t) {
    if (t + 8 > b.length) return 1;
    var le = b[t] === 0x49 && b[t + 1] === 0x49;
    if (!le && !(b[t] === 0x4d && b[t + 1] === 0x4d)) return 1;
    var r16 = function (i) {
      return le ? u16le(b, i) : u16be(b, i);
    };
    var r32 = function (i) {
      return le ? u32le(b, i) : u32be(b, i);
    };
    if (r16(t + 2) !== 42) return 1;
    var ifd = t + r32(t + 4);
    if (ifd + 2 > b.length) return 1;
    var count = r16(ifd);
    for (var k = 0; k < count; k++) {
      var e = ifd + 2 + k * 12;
      if (e + 12 > b.length) return 1;
      if (r16(e) === 0x0112) {
        var v = r16(e + 8);
        return v >= 1 && v <= 8 ? v : 1;
      }
    }
    return 1;
  }

  function exifOrientation(b, format) {
    var p, len;
    if (format === "JPEG") {
      p = 2;
      while (p + 4 < b.length && b[p] === 0xff) {
        var m = b[p + 1];
        if (m === 0xda || m === 0xd9) break;
        len = u16be(b, p + 2);
        if (m === 0xe1 && ascii(b, p + 4, 6) === "Exif\u0000\u0000") return tiffOrientation(b, p + 10);
        p += 2 + len;
      }
    } else if (format === "PNG") {
      p = 8;
      while (p + 8 <= b.length) {
        len = u32be(b, p);
        var type = ascii(b, p + 4, 4);
        if (type === "eXIf") return tiffOrientation(b, p + 8);
        if (type === "IDAT" || type === "IEND") break;
        p += 12 + len;
      }
    }
    // WebP: Chromium does not apply an EXIF orientation there (measured), so nothing to undo.
    return 1;
  }

  // rgba is the picture as displayed (orientation applied); returns it as stored.
  function unorient(rgba, w, h, o) {
    if (o === 1) return { rgba: rgba, width: w, height: h };
    var swap = o >= 5;
    var sw = swap ? h : w, sh = swap ? w : h; // the stored size
    var out = new Uint8ClampedArray(sw * sh * 4);
    for (var y = 0; y < sh; y++) {
      for (var x = 0; x < sw; x++) {
        var dx, dy;
        switch (o) {
          case 2: dx = sw - 1 - x; dy = y; break;
          case 3: dx = sw - 1 - x; dy = sh - 1 - y; break;
          case 4: dx = x; dy = sh - 1 - y; break;
          case 5: dx = y; dy = x; break;
          case 6: dx = sh - 1 - y; dy = x; break;
          case 7: dx = sh - 1 - y; dy = sw - 1 - x; break;
          default: dx = y; dy = sw - 1 - x; break; // 8
        }
        var s = (dy * w + dx) * 4, d = (y * sw + x) * 4;
        out[d] = rgba[s];
        out[d + 1] = rgba[s + 1];
        out[d + 2] = rgba[s + 2];
        out[d + 3] = rgba[s + 3];
      }
    }
    return { rgba: out, width: sw, height: sh };
  }

  function checkFile(file, bytes) {
    if (bytes.length === 0) throw new PageError("empty", "This file is empty.");
    var info = sniff(bytes);
    if (!info) {
      throw new PageError(
        "not_an_image",
        "This is not a photo this page can read. Choose a JPEG, PNG, WebP, GIF or BMP file."
      );
    }
    if (info.format === "TIFF") {
      throw new PageError(
        "unsupported_format",
        "This is a TIFF file, which this page cannot read. Save it as JPEG or PNG first."
      );
    }
    if (info.width && info.height) {
      if (info.width * info.height > MAX_PIXELS) {
        throw new PageError(
          "too_many_pixels",
          "This picture is too big (" + info.width + " × " + info.height + " pixels). The limit is " +
            MAX_PIXELS / 1e6 + " million pixels. Make a smaller copy and try again."
        );
      }
      if (Math.min(info.width, info.height) < MIN_SIDE) {
        throw new PageError(
          "too_small",
          "This picture is too small (" + info.width + " × " + info.height +
            " pixels) to fingerprint. It needs at least " + MIN_SIDE + " × " + MIN_SIDE + " pixels."
        );
      }
    }
    if (!info.complete) {
      throw new PageError("corrupt", "This photo looks damaged or incomplete, so it cannot be read.");
    }
    return info;
  }

  // ---- PNG with transparency or 16-bit samples: decoded here, as Pillow does ----------------
  // A canvas stores premultiplied alpha, so the colour under see-through pixels is lost, and it
  // rounds 16-bit samples its own way. Pillow's convert("RGB") keeps the colour and drops the
  // alpha, takes the high byte of 16-bit colour samples, and clips 16-bit greyscale at 255.
  // For these PNGs the page inflates and unfilters the image data itself (the browser's own
  // zlib, DecompressionStream) and applies the same rules.
  function pngNeedsOwnDecoder(b) {
    if (b.length < 33) return false;
    var depth = b[24], ctype = b[25];
    if (depth === 16 || ctype === 4 || ctype === 6) return true;
    var p = 8;
    while (p + 8 <= b.length) {
      var type = ascii(b, p + 4, 4);
      if (type === "tRNS") return true;
      if (type === "IDAT" || type === "IEND") return false;
      p += 12 + u32be(b, p);
    }
    return false;
  }

  async function inflate(data) {
    var stream = new Blob([data]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  var ADAM7 = [
    [0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2],
  ];

  function paeth(a, b, c) {
    var p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
  }

  // Unfilters one (sub-)image of rows*rowBytes starting at raw[pos]; returns [pixels, next pos].
  function unfilter(raw, pos, rows, rowBytes, bpp) {
    var out = new Uint8Array(rows * rowBytes);
    for (var y = 0; y < rows; y++) {
      if (pos + 1 + rowBytes > raw.length) throw new PageError("corrupt", "");
      var f = raw[pos++], o = y * rowBytes, up = o - rowBytes;
      for (var x = 0; x < rowBytes; x++) {
        var v = raw[pos + x];
        var a = x >= bpp ? out[o + x - bpp] : 0;
        var b = y > 0 ? out[up + x] : 0;
        var c = x >= bpp && y > 0 ? out[up + x - bpp] : 0;
        if (f === 1) v += a;
        else if (f === 2) v += b;
        else if (f === 3) v += (a + b) >> 1;
        else if (f === 4) v += paeth(a, b, c);
        else if (f !== 0) throw new PageError("corrupt", "");
        out[o + x] = v & 255;
      }
      pos += rowBytes;
    }
    return [out, pos];
  }

  async function decodePNG(b) {
    var width = u32be(b, 16), height = u32be(b, 20), depth = b[24], ctype = b[25];
    var interlaced = b[28] === 1;
    var channels = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[ctype];
    if (!channels) throw new PageError("corrupt", "");
    var palette = null, parts = [], total = 0, p = 8;
    while (p + 8 <= b.length) {
      var len = u32be(b, p), type = ascii(b, p + 4, 4);
      if (p + 12 + len > b.length) throw new PageError("corrupt", "");
      if (type === "PLTE") palette = b.subarray(p + 8, p + 8 + len);
      if (type === "IDAT") {
        parts.push(b.subarray(p + 8, p + 8 + len));
        total += len;
      }
      if (type === "IEND") break;
      p += 12 + len;
    }
    var idat = new Uint8Array(total), off = 0;
    parts.forEach(function (part) {
      idat.set(part, off);
      off += part.length;
    });
    var raw;
    try {
      raw = await inflate(idat);
    } catch (e) {
      throw new PageError("corrupt", "");
    }
    var bitsPerPixel = channels * depth;
    var bpp = Math.max(1, bitsPerPixel >> 3);
    var rgba = new Uint8ClampedArray(width * height * 4);
    var sample = function (row, x, ch) {
      // One sample of pixel x (channel ch) as Pillow's RGB conversion sees it.
      if (depth === 8) return row[x * channels + ch];
      if (depth === 16) {
        var i = (x * channels + ch) * 2;
        if (ctype === 0) return Math.min(255, (row[i] << 8) | row[i + 1]);
        return row[i];
      }
      var bit = x * depth, v = (row[bit >> 3] >> (8 - depth - (bit & 7))) & ((1 << depth) - 1);
      return ctype === 3 ? v : (v * 255) / ((1 << depth) - 1);
    };
    var put = function (row, x, tx, ty) {
      var o = (ty * width + tx) * 4, r, g, bl;
      if (ctype === 3) {
        var k = sample(row, x, 0) * 3;
        r = palette && k + 2 < palette.length ? palette[k] : 0;
        g = palette && k + 2 < palette.length ? palette[k + 1] : 0;
        bl = palette && k + 2 < palette.length ? palette[k + 2] : 0;
      } else if (ctype === 0 || ctype === 4) {
        r = g = bl = sample(row, x, 0);
      } else {
        r = sample(row, x, 0);
        g = sample(row, x, 1);
        bl = sample(row, x, 2);
      }
      rgba[o] = r;
      rgba[o + 1] = g;
      rgba[o + 2] = bl;
      rgba[o + 3] = 255;
    };
    var passes = interlaced ? ADAM7 : [[0, 0, 1, 1]];
    var pos = 0;
    for (var n = 0; n < passes.length; n++) {
      var xs = passes[n][0], ys = passes[n][1], dx = passes[n][2], dy = passes[n][3];
      var pw = Math.ceil((width - xs) / dx), ph = Math.ceil((height - ys) / dy);
      if (pw <= 0 || ph <= 0) continue;
      var rowBytes = Math.ceil((pw * bitsPerPixel) / 8);
      var done = unfilter(raw, pos, ph, rowBytes, bpp);
      pos = done[1];
      for (var y = 0; y < ph; y++) {
        var row = done[0].subarray(y * rowBytes, (y + 1) * rowBytes);
        for (var x = 0; x < pw; x++) put(row, x, xs + x * dx, ys + y * dy);
      }
    }
    return { rgba: rgba, width: width, height: height, translucent: false };
  }

  // ---- Pixels: decode without colour management or orientation changes --------------------
  async function decode(bytes, info) {
    if (info.format === "PNG" && pngNeedsOwnDecoder(bytes)) {
      try {
        return await decodePNG(bytes);
      } catch (e) {
        throw new PageError("corrupt", "This photo looks damaged or incomplete, so it cannot be read.");
      }
    }
    var bitmap;
    try {
      bitmap = await createImageBitmap(new Blob([bytes]), {
        colorSpaceConversion: "none",
        premultiplyAlpha: "none",
      });
    } catch (e) {
      throw new PageError("corrupt", "This photo looks damaged or incomplete, so it cannot be read.");
    }
    var w = bitmap.width, h = bitmap.height;
    if (w * h > MAX_PIXELS) {
      bitmap.close();
      throw new PageError("too_many_pixels", "This picture is too big (" + w + " × " + h + " pixels).");
    }
    if (Math.min(w, h) < MIN_SIDE) {
      bitmap.close();
      throw new PageError("too_small", "This picture is too small (" + w + " × " + h + " pixels).");
    }
    var canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    var ctx = canvas.getContext("2d", { willReadFrequently: true, colorSpace: "srgb" });
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(bitmap, 0, 0);
    bitmap.close();
    var rgba = ctx.getImageData(0, 0, w, h).data;
    canvas.width = canvas.height = 0;
    var orientation = exifOrientation(bytes, info.format);
    // Only undo what the browser did: for 5..8 it must have swapped width and height; Chromium
    // applies the tag of JPEG (APP1 Exif) and PNG (eXIf) pictures, all eight values (measured).
    if (orientation >= 5 && !(w === info.height && h === info.width)) orientation = 1;
    var upright = unorient(rgba, w, h, orientation);
    rgba = upright.rgba;
    w = upright.width;
    h = upright.height;
    var translucent = false;
    for (var i = 3; i < rgba.length; i += 4) {
      if (rgba[i] !== 255) {
        translucent = true;
        break;
      }
    }
    return { rgba: rgba, width: w, height: h, translucent: translucent };
  }

  function nextFrame() {
    return new Promise(function (resolve) {
      setTimeout(resolve, 0);
    });
  }

  async function fingerprint(file) {
    if (file.size === 0) throw new PageError("empty", "This file is empty.");
    if (file.size > MAX_FILE_BYTES) {
      throw new PageError("too_large", "This file is too large (over 64 MB).");
    }
    var bytes = new Uint8Array(await file.arrayBuffer());
    var info = checkFile(file, bytes);
    var pixels = await decode(bytes, info);
    bytes = null;
    await nextFrame();
    var hashes = [];
    BlindmatchSignals.base().forEach(function (signal) {
      hashes = hashes.concat(signal.compute(pixels));
    });
    return { hashes: hashes, translucent: pixels.translucent, pixels: pixels };
  }

  // The extra signals of a category (the region fingerprints of a protected photo), for a photo
  // already fingerprinted: its file is read and decoded again (still no request), and the
  // whole-picture fingerprint must come out the same, or the file changed meanwhile.
  async function extraSignals(e, signals, progress) {
    if (!e.file) throw new PageError("unreadable", "This file could not be read again.");
    var r = await fingerprint(e.file);
    if (r.hashes[0].hash !== e.hashes[0].hash) {
      throw new PageError("changed", "This file changed since it was fingerprinted. Remove it and add it again.");
    }
    var out = {};
    for (var i = 0; i < signals.length; i++) {
      out[signals[i].field] = await signals[i].compute(r.pixels, progress);
    }
    return out;
  }

  // ---- The list of photos ----------------------------------------------------------------
  function usable() {
    return entries.filter(function (e) {
      return e.state === "ok";
    });
  }

  function refreshButtons() {
    var n = usable().length;
    $("send").disabled = busy || n === 0 || sent;
    $("save-hashes").disabled = busy || n === 0;
    $("clear").disabled = busy || entries.length === 0;
  }

  function renderEntry(e) {
    var li = e.li;
    li.textContent = "";
    li.removeAttribute("data-tiles");
    li.setAttribute("data-state", e.state);
    li.setAttribute("data-file", e.name);
    var name = document.createElement("div");
    name.className = "name";
    name.textContent = e.name;
    li.appendChild(name);
    var line = document.createElement("div");
    if (e.state === "working") {
      line.textContent = "Making the fingerprint…";
    } else if (e.state === "ok") {
      var pdq = e.hashes[0];
      li.setAttribute("data-hash", pdq.hash);
      li.setAttribute("data-quality", String(pdq.quality));
      line.className = "ok";
      line.appendChild(document.createTextNode("Fingerprint ready. "));
      // The code itself means nothing to a person; it is there for whoever needs to check it.
      var details = document.createElement("details");
      var summary = document.createElement("summary");
      summary.textContent = "Show the fingerprint code";
      var code = document.createElement("code");
      code.textContent = pdq.hash;
      details.appendChild(summary);
      details.appendChild(code);
      line.appendChild(details);
      if (e.extras && e.extras.tiles) {
        li.setAttribute("data-tiles", JSON.stringify(e.extras.tiles));
        var parts = document.createElement("div");
        parts.className = "ok";
        parts.textContent =
          "Fingerprints of " + e.extras.tiles.length + " parts of the photo ready (for protection).";
        line.appendChild(parts);
      } else if (e.extrasProgress) {
        var working = document.createElement("div");
        working.textContent = e.extrasProgress;
        line.appendChild(working);
      }
      if (e.translucent) {
        var note = document.createElement("div");
        note.className = "help";
        note.textContent =
          "This picture has see-through parts; platforms may see it slightly differently.";
        li.appendChild(line);
        li.appendChild(note);
        return;
      }
    } else {
      li.setAttribute("data-code", e.code);
      if (e.hashes && e.hashes[0]) {
        li.setAttribute("data-hash", e.hashes[0].hash);
        li.setAttribute("data-quality", String(e.hashes[0].quality));
      }
      line.className = "error";
      line.textContent = e.message;
    }
    li.appendChild(line);
  }

  async function addFiles(fileList) {
    var files = Array.prototype.slice.call(fileList);
    var room = MAX_PHOTOS - entries.length;
    var dropped = Math.max(0, files.length - room);
    files = files.slice(0, Math.max(0, room));
    if (!files.length) {
      say($("status"), "You already have " + MAX_PHOTOS + " photos here. Send them first.", true);
      return;
    }
    setBusy(true);
    sent = false;
    refreshButtons();
    var fresh = files.map(function (f) {
      var li = document.createElement("li");
      $("results").appendChild(li);
      var e = { name: f.name, state: "working", li: li, file: f };
      entries.push(e);
      renderEntry(e);
      return e;
    });
    for (var k = 0; k < fresh.length; k++) {
      var e = fresh[k];
      say($("status"), "Working on photo " + (k + 1) + " of " + fresh.length + "…");
      await nextFrame();
      try {
        var r = await fingerprint(e.file);
        e.hashes = r.hashes;
        e.translucent = r.translucent;
        if (r.hashes[0].quality < QUALITY_THRESHOLD) {
          e.state = "error";
          e.code = "low_quality";
          e.message =
            "This photo has too little detail (quality " + r.hashes[0].quality +
            " of 100) for a reliable fingerprint, so it will not be sent.";
        } else {
          e.state = "ok";
        }
      } catch (err) {
        e.state = "error";
        e.code = err instanceof PageError ? err.code : "unreadable";
        e.message =
          err instanceof PageError ? err.message : "This file could not be read. Try another copy.";
      }
      if (e.state !== "ok") e.file = null; // kept (a handle, not a copy) for later signals
      renderEntry(e);
    }
    var ok = fresh.filter(function (e) {
      return e.state === "ok";
    }).length;
    var bad = fresh.length - ok;
    var text = "Made " + ok + (ok === 1 ? " fingerprint." : " fingerprints.");
    if (bad) text += " " + bad + (bad === 1 ? " photo" : " photos") + " could not be used; see the list.";
    if (dropped) text += " Only " + MAX_PHOTOS + " photos can be sent at once; " + dropped + " were left out.";
    say($("status"), text, bad > 0 && ok === 0);
    setBusy(false);
    refreshButtons();
    if (chosenCategory()) prepareCategory(chosenCategory());
  }

  // ---- Extra signals of a category (region fingerprints of protected photos) ----------------
  var extrasRun = null; // the running computation: {category, promise}

  function missingExtras(category) {
    if (!BlindmatchSignals.forCategory(category).length) return [];
    return usable().filter(function (e) {
      return !(e.extras && e.extrasFor === category);
    });
  }

  // Compute what `category` needs for every photo that lacks it; resolves when all are done.
  // One run at a time; photos added meanwhile are picked up by the same run.
  function prepareCategory(category) {
    if (extrasRun && extrasRun.category === category) return extrasRun.promise;
    var signals = BlindmatchSignals.forCategory(category);
    if (!signals.length) return Promise.resolve();
    if (category === PROTECTED && usable().length > MAX_PROTECTED_PHOTOS) {
      say($("send-status"), tooManyProtected(), true);
      return Promise.resolve();
    }
    var previous = extrasRun ? extrasRun.promise : Promise.resolve();
    var run = { category: category };
    run.promise = previous.then(async function () {
      document.body.setAttribute("data-extras", "working");
      var done = 0;
      var todo;
      while (
        chosenCategory() === category &&
        (todo = missingExtras(category).filter(function (e) {
          return !e.extrasFailed;
        })).length
      ) {
        var e = todo[0];
        var total = done + todo.length;
        say($("send-status"), "Making fingerprints of the parts of photo " + (done + 1) + " of " + total + "…");
        e.extrasProgress = "Making fingerprints of its parts…";
        renderEntry(e);
        try {
          var started = Date.now();
          var extras = await extraSignals(e, signals, function (k, n) {
            e.extrasProgress = "Making fingerprints of its parts: " + Math.round((100 * k) / n) + "%";
            renderEntry(e);
          });
          e.extras = extras;
          e.extrasFor = category;
          e.extrasMs = Date.now() - started;
          e.li.setAttribute("data-extras-ms", String(e.extrasMs));
        } catch (err) {
          e.extrasFailed = true;
          e.state = "error";
          e.code = err instanceof PageError ? err.code : "unreadable";
          e.message =
            err instanceof PageError ? err.message : "This file could not be read again. Try another copy.";
          e.file = null;
        }
        e.extrasProgress = null;
        if (entries.indexOf(e) >= 0) renderEntry(e);
        done++;
      }
      if (chosenCategory() === category && done) {
        say($("send-status"), "The photos are ready to send for protection.");
      }
      if (extrasRun === run) extrasRun = null;
      document.body.setAttribute("data-extras", "idle");
      refreshButtons();
    });
    extrasRun = run;
    return run.promise;
  }

  function tooManyProtected() {
    return (
      "At most " + MAX_PROTECTED_PHOTOS + " ordinary photos can be sent for protection at a time. " +
      "Remove the photos from this page and choose fewer, then send the rest afterwards."
    );
  }

  function clearAll() {
    entries.forEach(function (e) {
      e.file = null;
    });
    entries = [];
    $("results").textContent = "";
    $("files").value = "";
    sent = false;
    say($("status"), "The list is empty.");
    refreshButtons();
    $("files").focus();
  }

  // ---- Sending --------------------------------------------------------------------------
  function chosenCategory() {
    var checked = document.querySelector('input[name="category"]:checked');
    return checked ? checked.value : null;
  }

  function payloadHashes(category) {
    var out = [];
    var seen = {};
    var extra = category ? BlindmatchSignals.forCategory(category) : [];
    usable().forEach(function (e) {
      e.hashes.forEach(function (h, i) {
        var key = h.signal_type + ":" + h.hash;
        if (!seen[key]) {
          seen[key] = true;
          var item = { signal_type: h.signal_type, hash: h.hash, quality: h.quality };
          // The extra signals belong to the photo's whole-picture entry (the first).
          if (i === 0 && e.extras && e.extrasFor === category) {
            extra.forEach(function (s) {
              item[s.field] = e.extras[s.field];
            });
          }
          out.push(item);
        }
      });
    });
    return out;
  }

  function download(name, text) {
    var url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
    var a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(function () {
      URL.revokeObjectURL(url);
    }, 1000);
  }

  async function postJSON(path, body) {
    var response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer",
    });
    var data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    return { status: response.status, data: data || {} };
  }

  function explain(result) {
    if (result.status === 429) return "Too many tries. Please wait a minute and try again.";
    if (result.data && result.data.message) return "The service said: " + result.data.message;
    return "Something went wrong on the service (error " + result.status + "). Please try again later.";
  }

  var NETWORK_ERROR =
    "Could not reach the service. Check your connection and try again. (Your photos were not sent; they never are.)";

  async function send(event) {
    event.preventDefault();
    var status = $("send-status");
    var category = chosenCategory();
    if (!usable().length) {
      say(status, "Choose at least one photo first.", true);
      $("files").focus();
      return;
    }
    if (!category) {
      say(status, "Please choose what these photos are.", true);
      document.querySelector('input[name="category"]').focus();
      return;
    }
    if (!$("consent").checked) {
      say(status, "Please tick the box to agree before sending.", true);
      $("consent").focus();
      return;
    }
    if (category === PROTECTED && usable().length > MAX_PROTECTED_PHOTOS) {
      say(status, tooManyProtected(), true);
      return;
    }
    if (sending) return;
    if (missingExtras(category).length) {
      // The region fingerprints are still being made (or not started): wait for them.
      var before = usable().length;
      sending = true;
      $("send").setAttribute("aria-disabled", "true");
      await prepareCategory(category);
      sending = false;
      $("send").removeAttribute("aria-disabled");
      if (missingExtras(category).length || usable().length < before || !usable().length) {
        say(
          status,
          "Some photos could not be prepared; see the list. Nothing was sent. " +
            (usable().length ? "Press \u201cSend fingerprints\u201d again to send the others." : ""),
          true
        );
        return;
      }
    }
    if (offline) {
      say(
        status,
        "This page was opened from a saved file, so it cannot send. Use “Save fingerprints to a file” and give the file to your support service, or open this page on their website.",
        true
      );
      return;
    }
    // The button keeps keyboard focus while sending (disabling it would drop focus to the page);
    // a second press is ignored.
    if (sending) return;
    sending = true;
    $("send").setAttribute("aria-disabled", "true");
    say(status, "Sending the fingerprints…");
    var result;
    try {
      result = await postJSON("v1/submit", {
        hashes: payloadHashes(category),
        category: category,
        consent: true,
      });
    } catch (e) {
      result = null;
    }
    sending = false;
    $("send").removeAttribute("aria-disabled");
    if (!result || result.status !== 201) {
      say(status, result ? explain(result) : NETWORK_ERROR, true);
      return;
    }
    sent = true;
    var receipt = {
      blindmatch_receipt: 1,
      service: location.origin + location.pathname,
      items: result.data.receipt.map(function (r) {
        return r.item;
      }),
      secret: result.data.secret,
    };
    $("receipt").value = JSON.stringify(receipt);
    showReceiptSummary(receipt);
    $("receipt-section").hidden = false;
    say(
      status,
      "Sent " + receipt.items.length + (receipt.items.length === 1 ? " fingerprint" : " fingerprints") +
        ". Save your receipt below."
    );
    $("receipt-title").focus();
    refreshButtons();
  }

  // The receipt in words: who has the fingerprints, when, how many. The code stays as JSON.
  function showReceiptSummary(receipt) {
    var list = $("receipt-summary");
    list.textContent = "";
    var hub = $("hub-name") ? $("hub-name").textContent : receipt.service;
    var rows = [
      ["Sent to", hub + " (" + receipt.service + ")"],
      ["Sent on", new Date().toLocaleString()],
      ["Fingerprints", String(receipt.items.length)],
      ["To take them back", "come back to this page and paste the receipt code, or open the receipt file"],
    ];
    rows.forEach(function (row) {
      var dt = document.createElement("dt");
      dt.textContent = row[0];
      var dd = document.createElement("dd");
      dd.textContent = row[1];
      list.appendChild(dt);
      list.appendChild(dd);
    });
  }

  function saveHashes() {
    download(
      "fingerprints.json",
      JSON.stringify({
        blindmatch_fingerprints: 1,
        category: chosenCategory(),
        hashes: payloadHashes(chosenCategory()),
      })
    );
    say($("send-status"), "The fingerprints were saved to a file. It contains no photos.");
  }

  async function copyReceipt() {
    var text = $("receipt").value;
    try {
      await navigator.clipboard.writeText(text);
    } catch (e) {
      $("receipt").select();
      document.execCommand("copy");
    }
    say($("send-status"), "The receipt was copied.");
  }

  // ---- Taking fingerprints back ------------------------------------------------------------
  async function withdraw() {
    var status = $("withdraw-status");
    var receipt;
    try {
      receipt = JSON.parse($("withdraw-text").value.trim());
    } catch (e) {
      receipt = null;
    }
    if (
      !receipt ||
      typeof receipt !== "object" ||
      !Array.isArray(receipt.items) ||
      !receipt.items.length ||
      typeof receipt.secret !== "string"
    ) {
      say(status, "This does not look like a receipt. Paste the whole receipt, including the { and }.", true);
      $("withdraw-text").focus();
      return;
    }
    if (offline) {
      say(status, "This page was opened from a saved file, so it cannot reach the service. Open this page on your support service's website.", true);
      return;
    }
    $("withdraw").disabled = true;
    say(status, "Taking the fingerprints back…");
    var result;
    try {
      result = await postJSON("v1/withdraw", { items: receipt.items, secret: receipt.secret });
    } catch (e) {
      say(status, NETWORK_ERROR, true);
      $("withdraw").disabled = false;
      return;
    }
    $("withdraw").disabled = false;
    if (result.status !== 200) {
      say(status, explain(result), true);
      return;
    }
    var done = result.data.withdrawn;
    var refused = result.data.results.length - done;
    var text =
      "Done. " + done + (done === 1 ? " fingerprint was" : " fingerprints were") +
      " taken back. Platforms stop using them at their next update, usually within minutes.";
    if (refused) {
      text += " " + refused + (refused === 1 ? " fingerprint" : " fingerprints") +
        " could not be taken back with this receipt (if the same photo was sent earlier, only the first receipt can take it back).";
    }
    say(status, text, done === 0);
    document.body.setAttribute("data-withdrawn", String(done));
  }

  async function loadReceiptFile() {
    var f = $("withdraw-file").files[0];
    if (!f) return;
    if (f.size > 64 * 1024) {
      say($("withdraw-status"), "This file is too large to be a receipt.", true);
      return;
    }
    $("withdraw-text").value = await f.text();
    say($("withdraw-status"), "Receipt loaded. Press “Take fingerprints back”.");
  }

  // ---- Wiring -----------------------------------------------------------------------------
  function init() {
    var box = $("categories");
    CATEGORIES.forEach(function (c, i) {
      var p = document.createElement("p");
      p.className = "radio";
      var input = document.createElement("input");
      input.type = "radio";
      input.name = "category";
      input.value = c[0];
      input.id = "category-" + i;
      var label = document.createElement("label");
      label.htmlFor = input.id;
      label.textContent = c[1];
      p.appendChild(input);
      var text = document.createElement("span");
      text.appendChild(label);
      if (c[2]) {
        var help = document.createElement("span");
        help.className = "help block";
        help.id = input.id + "-help";
        help.textContent = c[2];
        input.setAttribute("aria-describedby", help.id);
        text.appendChild(help);
      }
      p.appendChild(text);
      box.appendChild(p);
      input.addEventListener("change", function () {
        if (this.checked && !busy) prepareCategory(this.value);
      });
    });
    if (offline) $("offline-note").hidden = false;
    $("files").addEventListener("change", function () {
      if (this.files && this.files.length) addFiles(this.files);
    });
    $("clear").addEventListener("click", clearAll);
    $("submit-form").addEventListener("submit", send);
    $("save-hashes").addEventListener("click", saveHashes);
    $("download-receipt").addEventListener("click", function () {
      download("fingerprint-receipt.json", $("receipt").value);
    });
    $("copy-receipt").addEventListener("click", copyReceipt);
    $("withdraw").addEventListener("click", withdraw);
    $("withdraw-file").addEventListener("change", loadReceiptFile);
    setBusy(false);
    refreshButtons();
    document.body.setAttribute("data-extras", "idle");
    document.body.setAttribute("data-ready", "1");
  }

  init();
})();

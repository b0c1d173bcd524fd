/* PDQ perceptual hashing in the browser, bit for bit as blindmatch's server side computes it.
 *
 * A port of Meta's reference C++ (facebook/ThreatExchange pdq/cpp: hashing/pdqhashing.cpp,
 * downscaling/downscaling.cpp) as wrapped by the `pdqhash` Python binding, plus the one step
 * blindmatch.node.hashing adds before it: a picture longer than 1024 px on a side is first shrunk
 * with Pillow's BOX filter (8-bit fixed point, horizontal pass then vertical, as Pillow's
 * libImaging/Resample.c does). Where the C++ uses `float`, every operation is rounded to 32-bit
 * with Math.fround; JavaScript's doubles give the correctly rounded float result for + - * /.
 *
 * Classic script (no ES module) so the page also works when saved and opened as a file.
 * Exposes globalThis.BlindmatchPDQ. No network, no DOM.
 */
(function (root) {
  "use strict";
  var f32 = Math.fround;

  var DOWNSCALE_SIDE = 1024; // blindmatch.node.hashing.DOWNSCALE_SIDE
  var MIN_SIDE = 8; // blindmatch.node.hashing.MIN_SIDE
  var MAX_PIXELS = 40000000; // blindmatch.node.hashing.MAX_PIXELS

  // ---- Python's round(): half to even ------------------------------------------------------
  function roundHalfEven(x) {
    var r = Math.round(x);
    if (Math.abs(x % 1) === 0.5 && r % 2 !== 0) r -= 1;
    return r;
  }

  // The size blindmatch.node.hashing.downscale() shrinks a picture to, or null when it is kept.
  function downscaleSize(width, height) {
    var longest = Math.max(width, height);
    if (longest <= DOWNSCALE_SIDE) return null;
    var scale = DOWNSCALE_SIDE / longest;
    return [Math.max(1, roundHalfEven(width * scale)), Math.max(1, roundHalfEven(height * scale))];
  }

  // ---- Pillow's resample, BOX filter, 8 bits per channel -----------------------------------
  var PRECISION_BITS = 22; // 32 - 8 - 2

  function boxCoeffs(inSize, outSize) {
    var scale = inSize / outSize;
    var filterscale = scale < 1.0 ? 1.0 : scale;
    var support = 0.5 * filterscale;
    var ksize = Math.ceil(support) * 2 + 1;
    var bounds = new Int32Array(outSize * 2);
    var kk = new Int32Array(outSize * ksize);
    var w = new Float64Array(ksize);
    for (var xx = 0; xx < outSize; xx++) {
      var center = 0 + (xx + 0.5) * scale;
      var ww = 0.0;
      var ss = 1.0 / filterscale;
      var xmin = Math.trunc(center - support + 0.5);
      if (xmin < 0) xmin = 0;
      var xmax = Math.trunc(center + support + 0.5);
      if (xmax > inSize) xmax = inSize;
      xmax -= xmin;
      var x;
      for (x = 0; x < xmax; x++) {
        var t = (x + xmin - center + 0.5) * ss;
        var v = t > -0.5 && t <= 0.5 ? 1.0 : 0.0;
        w[x] = v;
        ww += v;
      }
      for (x = 0; x < xmax; x++) {
        var k = ww !== 0.0 ? w[x] / ww : w[x];
        kk[xx * ksize + x] =
          k < 0 ? Math.trunc(-0.5 + k * (1 << PRECISION_BITS)) : Math.trunc(0.5 + k * (1 << PRECISION_BITS));
      }
      bounds[xx * 2] = xmin;
      bounds[xx * 2 + 1] = xmax;
    }
    return { ksize: ksize, bounds: bounds, kk: kk };
  }

  function clip8(ss) {
    var v = ss >> PRECISION_BITS;
    return v < 0 ? 0 : v > 255 ? 255 : v;
  }

  function resampleHorizontal(src, srcW, rows, yOffset, newW, c) {
    var out = new Uint8Array(newW * rows * 3);
    var half = 1 << (PRECISION_BITS - 1);
    for (var yy = 0; yy < rows; yy++) {
      var rowIn = (yy + yOffset) * srcW * 3;
      for (var xx = 0; xx < newW; xx++) {
        var xmin = c.bounds[xx * 2], xmax = c.bounds[xx * 2 + 1], ko = xx * c.ksize;
        var s0 = half, s1 = half, s2 = half;
        for (var x = 0; x < xmax; x++) {
          var k = c.kk[ko + x], p = rowIn + (x + xmin) * 3;
          s0 += src[p] * k;
          s1 += src[p + 1] * k;
          s2 += src[p + 2] * k;
        }
        var o = (yy * newW + xx) * 3;
        out[o] = clip8(s0);
        out[o + 1] = clip8(s1);
        out[o + 2] = clip8(s2);
      }
    }
    return out;
  }

  function resampleVertical(src, w, newH, boundsShift, c) {
    var out = new Uint8Array(w * newH * 3);
    var half = 1 << (PRECISION_BITS - 1);
    for (var yy = 0; yy < newH; yy++) {
      var ymin = c.bounds[yy * 2] - boundsShift, ymax = c.bounds[yy * 2 + 1], ko = yy * c.ksize;
      for (var xx = 0; xx < w; xx++) {
        var s0 = half, s1 = half, s2 = half;
        for (var y = 0; y < ymax; y++) {
          var k = c.kk[ko + y], q = ((y + ymin) * w + xx) * 3;
          s0 += src[q] * k;
          s1 += src[q + 1] * k;
          s2 += src[q + 2] * k;
        }
        var o = (yy * w + xx) * 3;
        out[o] = clip8(s0);
        out[o + 1] = clip8(s1);
        out[o + 2] = clip8(s2);
      }
    }
    return out;
  }

  // Image.resize((newW, newH), Image.Resampling.BOX) of an RGB picture, as Pillow 13 computes
  // it (ImagingResampleInner). rgb: Uint8Array of width*height*3; returns newW*newH*3 bytes.
  function pillowBoxResize(rgb, width, height, newW, newH) {
    if (newW === width && newH === height) return rgb.slice();
    var needH = newW !== width;
    var needV = newH !== height;
    // Pillow 13: when the height shrinks by more than twice as many pixels as the width, the
    // vertical pass runs first (python-pillow/Pillow#9549); before 13 it was always horizontal
    // first. The 8-bit rounding between the passes makes the order visible.
    var horizontalFirst = !(height - newH > 0 && height - newH > (width - newW) * 2);
    var vert = needV ? boxCoeffs(height, newH) : null;
    var hor = needH ? boxCoeffs(width, newW) : null;
    var cur = rgb;
    if (horizontalFirst) {
      var yFirst = 0, yLast = height;
      if (needV) {
        yFirst = vert.bounds[0];
        yLast = vert.bounds[newH * 2 - 2] + vert.bounds[newH * 2 - 1];
      }
      if (needH) cur = resampleHorizontal(cur, width, yLast - yFirst, yFirst, newW, hor);
      else yFirst = 0;
      if (needV) cur = resampleVertical(cur, newW, newH, yFirst, vert);
    } else {
      if (needV) cur = resampleVertical(cur, width, newH, 0, vert);
      if (needH) cur = resampleHorizontal(cur, width, newH, 0, newW, hor);
    }
    return cur;
  }

  // ---- PDQ ----------------------------------------------------------------------------------
  // The 16x64 DCT matrix, as pdqhashing.cpp builds it: a float scale times a double cosine,
  // stored as float.
  var DCT = (function () {
    var m = new Float32Array(16 * 64);
    var scaleFactor = f32(Math.sqrt(2.0 / 64.0));
    var pi = 3.14159265358979323846;
    for (var i = 0; i < 16; i++) {
      for (var j = 0; j < 64; j++) {
        m[i * 64 + j] = scaleFactor * Math.cos((pi / 2.0 / 64.0) * (i + 1) * (2 * j + 1));
      }
    }
    return m;
  })();

  // RGB (packed, 3 bytes a pixel) -> float luma. The pdqhash binding computes it in numpy
  // float64 (r*0.299 + g*0.587 + b*0.114) and stores it as float32.
  function lumaFromRGB(rgb, n) {
    var luma = new Float32Array(n);
    for (var i = 0, p = 0; i < n; i++, p += 3) {
      luma[i] = rgb[p] * 0.299 + rgb[p + 1] * 0.587 + rgb[p + 2] * 0.114;
    }
    return luma;
  }

  function jaroszWindow(oldDim, newDim) {
    return Math.floor((oldDim + 2 * newDim - 1) / (2 * newDim));
  }

  function box1D(inv, inOff, outv, outOff, length, stride, fullWindow) {
    var halfWindow = Math.floor((fullWindow + 2) / 2);
    var p1 = halfWindow - 1;
    var p2 = fullWindow - halfWindow + 1;
    var p3 = length - fullWindow;
    var p4 = halfWindow - 1;
    var li = inOff, ri = inOff, oi = outOff;
    var sum = 0.0, cur = 0, i;
    for (i = 0; i < p1; i++) {
      sum = f32(sum + inv[ri]);
      cur++;
      ri += stride;
    }
    for (i = 0; i < p2; i++) {
      sum = f32(sum + inv[ri]);
      cur++;
      outv[oi] = sum / cur;
      ri += stride;
      oi += stride;
    }
    for (i = 0; i < p3; i++) {
      sum = f32(sum + inv[ri]);
      sum = f32(sum - inv[li]);
      outv[oi] = sum / cur;
      li += stride;
      ri += stride;
      oi += stride;
    }
    for (i = 0; i < p4; i++) {
      sum = f32(sum - inv[li]);
      cur--;
      outv[oi] = sum / cur;
      li += stride;
      oi += stride;
    }
  }

  // Two passes of (box along rows, box along columns); the result ends up in buf1.
  function jaroszFilter(buf1, buf2, rows, cols, windowAlongRows, windowAlongCols, reps) {
    for (var r = 0; r < reps; r++) {
      var i, j;
      for (i = 0; i < rows; i++) box1D(buf1, i * cols, buf2, i * cols, cols, 1, windowAlongRows);
      for (j = 0; j < cols; j++) box1D(buf2, j, buf1, j, rows, cols, windowAlongCols);
    }
  }

  function decimate(inv, rows, cols) {
    var out = new Float32Array(64 * 64);
    for (var oi = 0; oi < 64; oi++) {
      var ii = Math.floor(((oi + 0.5) * rows) / 64);
      for (var oj = 0; oj < 64; oj++) {
        var ij = Math.floor(((oj + 0.5) * cols) / 64);
        out[oi * 64 + oj] = inv[ii * cols + ij];
      }
    }
    return out;
  }

  function qualityMetric(a) {
    var sum = 0, i, j, d;
    for (i = 0; i < 63; i++) {
      for (j = 0; j < 64; j++) {
        d = Math.trunc(f32(f32(f32(a[i * 64 + j] - a[(i + 1) * 64 + j]) * 100) / 255));
        sum += Math.abs(d);
      }
    }
    for (i = 0; i < 64; i++) {
      for (j = 0; j < 63; j++) {
        d = Math.trunc(f32(f32(f32(a[i * 64 + j] - a[i * 64 + j + 1]) * 100) / 255));
        sum += Math.abs(d);
      }
    }
    var q = Math.trunc(sum / 90);
    return q > 100 ? 100 : q;
  }

  function dct64To16(a) {
    var t = new Float32Array(16 * 64);
    var b = new Float32Array(16 * 16);
    var i, j, k, s;
    for (i = 0; i < 16; i++) {
      for (j = 0; j < 64; j++) {
        s = 0.0;
        for (k = 0; k < 64; k++) s = f32(s + f32(DCT[i * 64 + k] * a[k * 64 + j]));
        t[i * 64 + j] = s;
      }
    }
    for (i = 0; i < 16; i++) {
      for (j = 0; j < 16; j++) {
        s = 0.0;
        for (k = 0; k < 64; k++) s = f32(s + f32(t[i * 64 + k] * DCT[j * 64 + k]));
        b[i * 16 + j] = s;
      }
    }
    return b;
  }

  // pdqFloat256FromFloatLuma: luma (Float32Array rows*cols, consumed) -> {dct16x16, quality}.
  function pdqFloatFromLuma(luma, rows, cols) {
    var a;
    if (rows === 64 && cols === 64) {
      a = Float32Array.from(luma);
    } else {
      var buf2 = new Float32Array(rows * cols);
      jaroszFilter(luma, buf2, rows, cols, jaroszWindow(cols, 64), jaroszWindow(rows, 64), 2);
      a = decimate(luma, rows, cols);
    }
    return { dct: dct64To16(a), quality: qualityMetric(a) };
  }

  var HEX = "0123456789abcdef";

  // The float vector in pdqhash.compute_float's order (the 16x16 block flattened, reversed),
  // thresholded at its median as blindmatch.protocol.signals.pdq_bits_from_float does
  // (numpy's median: the mean of the two middle values), packed most significant bit first.
  function hashFromDct(dct) {
    var v = new Float64Array(256);
    for (var k = 0; k < 256; k++) v[k] = dct[255 - k];
    var sorted = Float64Array.from(v).sort();
    var median = (sorted[127] + sorted[128]) / 2;
    var hex = "";
    for (var byte = 0; byte < 32; byte++) {
      var b = 0;
      for (var bit = 0; bit < 8; bit++) b = (b << 1) | (v[byte * 8 + bit] > median ? 1 : 0);
      hex += HEX[b >> 4] + HEX[b & 15];
    }
    return hex;
  }

  // The pixels PDQ is computed on: packed RGB shrunk as the server shrinks it (long side at
  // most 1024). Returns {rgb, width, height}; the tile signal cuts its tiles from these.
  function preparedRGB(rgb, width, height) {
    if (width < MIN_SIDE || height < MIN_SIDE) throw new Error("too_small");
    if (width * height > MAX_PIXELS) throw new Error("too_large");
    var size = downscaleSize(width, height);
    if (size) {
      rgb = pillowBoxResize(rgb, width, height, size[0], size[1]);
      width = size[0];
      height = size[1];
    }
    return { rgb: rgb, width: width, height: height };
  }

  // PDQ of the sub-rectangle [left, right) x [top, bottom) of packed RGB `width` pixels wide,
  // exactly as pdqhash.compute on those pixels alone (rgb[top:bottom, left:right] in numpy):
  // luma is per pixel, so cutting it equals cutting the pixels.
  function pdqOfRect(rgb, width, left, top, right, bottom) {
    var cols = right - left, rows = bottom - top;
    var luma = new Float32Array(rows * cols);
    for (var y = 0, i = 0; y < rows; y++) {
      for (var x = 0, p = ((top + y) * width + left) * 3; x < cols; x++, i++, p += 3) {
        luma[i] = rgb[p] * 0.299 + rgb[p + 1] * 0.587 + rgb[p + 2] * 0.114;
      }
    }
    var r = pdqFloatFromLuma(luma, rows, cols);
    return { hash: hashFromDct(r.dct), quality: r.quality };
  }

  // The whole pipeline from packed RGB: shrink if huge (as the server does), then PDQ.
  function pdqFromRGB(rgb, width, height) {
    var px = preparedRGB(rgb, width, height);
    var r = pdqOfRect(px.rgb, px.width, 0, 0, px.width, px.height);
    return { hash: r.hash, quality: r.quality, width: px.width, height: px.height };
  }

  // Canvas ImageData-like RGBA bytes -> packed RGB; the alpha channel is dropped, as Pillow's
  // convert("RGB") does.
  function rgbFromRGBA(rgba, width, height) {
    var n = width * height;
    var rgb = new Uint8Array(n * 3);
    for (var i = 0, p = 0, q = 0; i < n; i++, p += 4, q += 3) {
      rgb[q] = rgba[p];
      rgb[q + 1] = rgba[p + 1];
      rgb[q + 2] = rgba[p + 2];
    }
    return rgb;
  }

  function pdqFromRGBA(rgba, width, height) {
    return pdqFromRGB(rgbFromRGBA(rgba, width, height), width, height);
  }

  // The prepared pixels of a page picture ({rgba, width, height}), computed once and kept on it
  // so every signal of the same photo shares the conversion and the downscale.
  function preparedPixels(pixels) {
    if (!pixels.prepared) {
      pixels.prepared = preparedRGB(
        rgbFromRGBA(pixels.rgba, pixels.width, pixels.height), pixels.width, pixels.height
      );
    }
    return pixels.prepared;
  }

  // PDQ of a page picture (the whole picture, after the same downscale).
  function pdqOfPixels(pixels) {
    var px = preparedPixels(pixels);
    var r = pdqOfRect(px.rgb, px.width, 0, 0, px.width, px.height);
    return { hash: r.hash, quality: r.quality, width: px.width, height: px.height };
  }

  root.BlindmatchPDQ = {
    DOWNSCALE_SIDE: DOWNSCALE_SIDE,
    MIN_SIDE: MIN_SIDE,
    MAX_PIXELS: MAX_PIXELS,
    QUALITY_THRESHOLD: 50,
    roundHalfEven: roundHalfEven,
    downscaleSize: downscaleSize,
    pillowBoxResize: pillowBoxResize,
    lumaFromRGB: lumaFromRGB,
    pdqFloatFromLuma: pdqFloatFromLuma,
    hashFromDct: hashFromDct,
    preparedRGB: preparedRGB,
    preparedPixels: preparedPixels,
    pdqOfRect: pdqOfRect,
    pdqOfPixels: pdqOfPixels,
    pdqFromRGB: pdqFromRGB,
    pdqFromRGBA: pdqFromRGBA,
    rgbFromRGBA: rgbFromRGBA,
  };
})(typeof globalThis !== "undefined" ? globalThis : this);

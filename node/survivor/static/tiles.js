/* The derivative signal `pdq-tiles-1` (specs/derivatives.md, sections 2-3): PDQ hashes of the
 * regions ("tiles") of a photo the person wants to protect from being edited into a fake, bit
 * for bit as blindmatch.node.tile_hashing.index_tiles computes them.
 *
 * The tiles are cut from the same pixels whole-picture PDQ uses (RGB, long side shrunk to at
 * most 1024 as the server does, pdq.js preparedPixels). A holder indexes the *index tiles*:
 * for each frame of `frames` (the picture, and its centred crops by 5% and 10%), every cell
 * of a 4x4 and a 5x5 grid, 41 cells a frame, 123 in all. Each tile is hashed with the PDQ core
 * of pdq.js on exactly its pixels; a tile with a side under 8 pixels is not hashed, and one of
 * quality under 30 is left out (the quality gate).
 *
 * Classic script; exposes globalThis.BlindmatchTiles and registers the signal for the category
 * `protected-source` with BlindmatchSignals. No network, no DOM.
 */
(function (root) {
  "use strict";
  var PDQ = root.BlindmatchPDQ;

  // blindmatch.protocol.derivative.PDQ_TILES_1
  var SCHEME = {
    name: "pdq-tiles-1",
    grids: [4, 5],
    frames: [0.0, 0.05, 0.1],
    minQuality: 30,
    minSide: 8,
  };

  // Cells grid by grid, then row by row, then column by column (the spec's cell order).
  function cells() {
    var out = [];
    SCHEME.grids.forEach(function (n) {
      for (var r = 0; r < n; r++) {
        for (var c = 0; c < n; c++) out.push({ grid: n, col: c, row: r, label: "g" + n + "c" + c + "r" + r });
      }
    });
    return out;
  }

  // derivative.frame_box: dx = round(W * f) (half to even), dx div 2 from the left.
  function frameBox(width, height, crop) {
    var dx = PDQ.roundHalfEven(width * crop), dy = PDQ.roundHalfEven(height * crop);
    var hx = Math.floor(dx / 2), hy = Math.floor(dy / 2);
    return [hx, hy, width - (dx - hx), height - (dy - hy)];
  }

  // derivative.cell_box: integer division of the frame.
  function cellBox(frame, cell) {
    var l = frame[0], t = frame[1], fw = frame[2] - frame[0], fh = frame[3] - frame[1], n = cell.grid;
    return [
      l + Math.floor((cell.col * fw) / n),
      t + Math.floor((cell.row * fh) / n),
      l + Math.floor(((cell.col + 1) * fw) / n),
      t + Math.floor(((cell.row + 1) * fh) / n),
    ];
  }

  // PDQ_TILES_1.index_tiles(width, height): frame by frame, cell by cell.
  function indexTiles(width, height) {
    var out = [];
    var all = cells();
    SCHEME.frames.forEach(function (crop, fi) {
      var frame = frameBox(width, height, crop);
      all.forEach(function (cell) {
        out.push({ cell: cell.label, frame: fi, box: cellBox(frame, cell) });
      });
    });
    return out;
  }

  function hashTile(px, tile) {
    var b = tile.box;
    if (b[2] - b[0] < SCHEME.minSide || b[3] - b[1] < SCHEME.minSide) return null;
    var h = PDQ.pdqOfRect(px.rgb, px.width, b[0], b[1], b[2], b[3]);
    return { cell: tile.cell, frame: tile.frame, hash: h.hash, quality: h.quality };
  }

  function gated(h, keepAll) {
    return h !== null && (keepAll || h.quality >= SCHEME.minQuality);
  }

  // Every index tile's hash of prepared pixels ({rgb, width, height}), gated unless keepAll.
  function indexTileHashes(px, keepAll) {
    return indexTiles(px.width, px.height)
      .map(function (t) {
        return hashTile(px, t);
      })
      .filter(function (h) {
        return gated(h, keepAll);
      });
  }

  function pause() {
    return new Promise(function (resolve) {
      setTimeout(resolve, 0);
    });
  }

  var now =
    root.performance && root.performance.now
      ? function () {
          return root.performance.now();
        }
      : Date.now;

  // The same, giving the page's event loop a turn every ~40 ms so it stays responsive, and
  // calling progress(done, total) on the way.
  async function indexTileHashesAsync(px, progress, keepAll) {
    var tiles = indexTiles(px.width, px.height);
    var out = [];
    var since = now();
    for (var i = 0; i < tiles.length; i++) {
      var h = hashTile(px, tiles[i]);
      if (gated(h, keepAll)) out.push(h);
      if (now() - since > 40) {
        if (progress) progress(i + 1, tiles.length);
        await pause();
        since = now();
      }
    }
    if (progress) progress(tiles.length, tiles.length);
    return out;
  }

  root.BlindmatchTiles = {
    SCHEME: SCHEME,
    CATEGORY: "protected-source",
    cells: cells,
    frameBox: frameBox,
    cellBox: cellBox,
    indexTiles: indexTiles,
    indexTileHashes: indexTileHashes,
    indexTileHashesAsync: indexTileHashesAsync,
  };

  if (root.BlindmatchSignals) {
    root.BlindmatchSignals.register({
      name: SCHEME.name,
      categories: ["protected-source"],
      field: "tiles",
      compute: function (pixels, progress) {
        return indexTileHashesAsync(PDQ.preparedPixels(pixels), progress);
      },
    });
  }
})(typeof globalThis !== "undefined" ? globalThis : this);

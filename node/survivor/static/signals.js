/* The signals the page computes from a photo's pixels, kept apart from the page logic so a
 * signal can be added without touching it. A file that runs after this one calls
 *
 *   BlindmatchSignals.register({
 *     name: "pdq",                     // for ordering and tests
 *     compute: function (pixels) {     // pixels: {rgba: Uint8ClampedArray, width, height}
 *       return [{signal_type: "...", hash: "<hex>", quality: 0..100}];   // zero or more
 *     },
 *   });
 *
 * and the page submits every returned hash (the hub must accept the signal_type). A signal
 * that only some categories of photo need, and whose output belongs to the photo's whole-picture
 * hash rather than standing alone, says so:
 *
 *   BlindmatchSignals.register({
 *     name: "pdq-tiles-1",
 *     categories: ["protected-source"],  // computed only for photos sent under these
 *     field: "tiles",                    // its output becomes this field of the photo's entry
 *     compute: async function (pixels, progress) { return [...]; },  // may be asynchronous;
 *   });                                  // progress(done, total) may be called on the way
 *
 * (tiles.js registers the derivative signal that way). Signals without `categories` are
 * computed for every photo when it is picked.
 */
(function (root) {
  "use strict";
  var registry = [];

  function register(signal) {
    if (!signal || typeof signal.name !== "string" || typeof signal.compute !== "function") {
      throw new Error("a signal needs a name and a compute(pixels) function");
    }
    if (signal.categories !== undefined) {
      if (!Array.isArray(signal.categories) || typeof signal.field !== "string") {
        throw new Error("a signal for some categories needs a list of them and a field name");
      }
    }
    registry.push(signal);
  }

  register({
    name: "pdq",
    compute: function (pixels) {
      var r = root.BlindmatchPDQ.pdqOfPixels(pixels);
      return [{ signal_type: "pdq", hash: r.hash, quality: r.quality }];
    },
  });

  root.BlindmatchSignals = {
    register: register,
    all: function () {
      return registry.slice();
    },
    // The signals computed for every photo when it is picked.
    base: function () {
      return registry.filter(function (s) {
        return s.categories === undefined;
      });
    },
    // The extra signals photos of `category` need (attached to their entry as `field`).
    forCategory: function (category) {
      return registry.filter(function (s) {
        return s.categories !== undefined && s.categories.indexOf(category) >= 0;
      });
    },
  };
})(typeof globalThis !== "undefined" ? globalThis : this);

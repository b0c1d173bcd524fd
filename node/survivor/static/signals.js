/* The signals the page computes from a photo's pixels, kept apart from the page logic so a
 * second signal can be added without touching it: a file that runs after this one calls
 *
 *   BlindmatchSignals.register({
 *     name: "region-tiles",            // shown nowhere; for ordering and tests
 *     compute: function (pixels) {     // pixels: {rgba: Uint8ClampedArray, width, height}
 *       return [{signal_type: "...", hash: "<hex>", quality: 0..100}];   // zero or more
 *     },
 *   });
 *
 * and the page submits every returned hash (the hub must accept the signal_type).
 * Only PDQ is registered today; the derivative (region/tile) signal is designed separately.
 */
(function (root) {
  "use strict";
  var registry = [];

  function register(signal) {
    if (!signal || typeof signal.name !== "string" || typeof signal.compute !== "function") {
      throw new Error("a signal needs a name and a compute(pixels) function");
    }
    registry.push(signal);
  }

  register({
    name: "pdq",
    compute: function (pixels) {
      var r = root.BlindmatchPDQ.pdqFromRGBA(pixels.rgba, pixels.width, pixels.height);
      return [{ signal_type: "pdq", hash: r.hash, quality: r.quality }];
    },
  });

  root.BlindmatchSignals = {
    register: register,
    all: function () {
      return registry.slice();
    },
  };
})(typeof globalThis !== "undefined" ? globalThis : this);

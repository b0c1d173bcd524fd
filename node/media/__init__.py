"""Media decoding and perceptual hashing (PDQ, PDQ tiles, banked crops), and FFmpeg's frames for
the signal types that hash video (their hashers are their adapters', node/signals/)."""

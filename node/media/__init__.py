"""Media decoding and perceptual hashing (PDQ, vPDQ, PDQ tiles)."""

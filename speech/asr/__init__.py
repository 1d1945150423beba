"""Speech recognition: ChunkFormer encoder, CTC head, front end and decoding."""

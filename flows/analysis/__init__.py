"""One model at a time: analysis shard by shard, description, layer selection, distance, smoothing."""

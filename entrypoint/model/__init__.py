"""Reading a checkpoint's shape: config.json and safetensors headers, never weights."""

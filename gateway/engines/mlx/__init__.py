"""MLX backend (Apple Silicon): mlx, mlx-embeddings and mlx-vlm engines."""

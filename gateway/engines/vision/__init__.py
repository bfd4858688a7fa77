"""Vision helpers shared by every backend: CLIP/SigLIP dual encoders, vision-language inputs."""

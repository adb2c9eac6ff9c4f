"""lorax-kit: LoRAX on Kubernetes, its simulator and its multi-LoRA load harness."""

__version__ = "0.1.0"

"""PyTorch peer of `wanrt bench train` (issue 23): one training step of the official Wan2.1 DiT.

The official WanModel (random weights, 1.3B widths) with peft-style LoRA (base(x) + B(A(x))·alpha/r on
self_attn/cross_attn q, k, v, o and ffn.0, ffn.2 of every block: wanrt's --lora_targets q,k,v,o,ffn),
frozen bf16 base weights, f32 LoRA weights, bf16 autocast, gradient checkpointing per block (DiffSynth's
use_gradient_checkpointing), the flow-matching loss at one table row, clip_grad_norm_(1.0), AdamW.
--full trains every weight instead (f32 weights, autocast). Times the step with CUDA events (median after
warm-up) and reports torch.cuda.max_memory_allocated over the timed steps.

usage (the official sources as ../shared/refbench/README.md says, wanref.py from refbench):
    WAN_REF=.ref/wan REFBENCH=../shared/refbench python3 scripts/bench_torch_train.py [--json OUT] [--tiny]
"""
import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.environ.get("REFBENCH", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                            "..", "..", "shared", "refbench")))
import wanref  # noqa: E402

CFG13 = dict(model_type="t2v", patch_size=(1, 2, 2), text_len=512, in_dim=16, dim=1536, ffn_dim=8960,
             freq_dim=256, text_dim=4096, out_dim=16, num_heads=12, num_layers=30,
             window_size=(-1, -1), qk_norm=True, cross_attn_norm=True, eps=1e-6)


class LoraLinear(torch.nn.Module):
    """peft's LoRA Linear (dropout 0): base(x) + lora_B(lora_A(x)) · alpha / r, B zero at the start."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base = base
        self.lora_A = torch.nn.Linear(base.in_features, r, bias=False, device=base.weight.device)
        self.lora_B = torch.nn.Linear(r, base.out_features, bias=False, device=base.weight.device)
        torch.nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        torch.nn.init.zeros_(self.lora_B.weight)
        self.scaling = alpha / r

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scaling


class Checkpointed(torch.nn.Module):
    """A block run under torch.utils.checkpoint: activations recomputed in the backward."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x, **kw):
        return torch.utils.checkpoint.checkpoint(self.block, x, use_reentrant=False, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default="")
    ap.add_argument("--tiny", action="store_true", help="small shapes, to test the script on a CPU")
    ap.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    W = wanref.load()
    cfg = dict(CFG13)
    F, H, Wd = 21, 60, 104  # latent grid of 81 frames at 480x832
    if a.tiny:
        cfg.update(dim=64, ffn_dim=128, num_heads=2, num_layers=2, text_dim=48, freq_dim=32, text_len=16)
        F, H, Wd = 5, 8, 12
    torch.manual_seed(0)
    model = W.model.WanModel(**cfg).to(dev)
    if a.full:
        params = list(model.parameters())
    else:
        model = model.to(torch.bfloat16 if dev == "cuda" else torch.float32).requires_grad_(False)
        for blk in model.blocks:
            for att in (blk.self_attn, blk.cross_attn):
                for n in ("q", "k", "v", "o"):
                    setattr(att, n, LoraLinear(getattr(att, n), a.rank, a.rank))
            blk.ffn[0] = LoraLinear(blk.ffn[0], a.rank, a.rank)
            blk.ffn[2] = LoraLinear(blk.ffn[2], a.rank, a.rank)
        params = [p for n, p in model.named_parameters() if "lora_" in n]
        for p in params:
            p.data = p.data.float()
            p.requires_grad_(True)
    for i in range(len(model.blocks)):
        model.blocks[i] = Checkpointed(model.blocks[i])
    model.train()
    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.01)
    n_params = sum(p.numel() for p in params)

    # flow matching at table row 500 of DiffSynth's shift-5 table, its weight (train/flow_match.h)
    s = 1 - 500 / 1000
    sigma = 5 * s / (1 + 4 * s)
    x0 = torch.randn(16, F, H, Wd, device=dev)
    noise = torch.randn_like(x0)
    xt = (1 - sigma) * x0 + sigma * noise
    target = noise - x0
    t = torch.tensor([1000 * sigma], device=dev)
    ctx = [torch.randn(min(120, cfg["text_len"]), cfg["text_dim"], device=dev)]
    seq = F * (H // 2) * (Wd // 2)
    ac = torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=dev == "cuda")

    def step():
        opt.zero_grad(set_to_none=True)
        with ac:
            y = model([xt], t=t, context=ctx, seq_len=seq)[0]
        loss = torch.nn.functional.mse_loss(y.float(), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss

    for _ in range(a.warmup):
        step()
    ts = []
    if dev == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for _ in range(a.reps):
        if dev == "cuda":
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            loss = step()
            e1.record()
            torch.cuda.synchronize()
            ts.append(e0.elapsed_time(e1))
        else:
            import time
            t0 = time.perf_counter()
            loss = step()
            ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    r = {"case": "full" if a.full else f"lora_r{a.rank}", "tokens": seq, "blocks": cfg["num_layers"],
         "trainable": n_params, "median_ms": ts[len(ts) // 2], "min_ms": ts[0], "max_ms": ts[-1],
         "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if dev == "cuda" else 0.0,
         "loss": float(loss), "torch": torch.__version__,
         "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
         "sdpa": "torch SDPA (wanref.ref_attention), bf16 autocast, checkpointing per block"}
    print(json.dumps(r), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)


if __name__ == "__main__":
    main()

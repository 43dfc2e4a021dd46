# Writes the .pth files test_pth.cpp reads, with real torch (run once; outputs are checked in):
#   torch_mixed.pth   — nested state dict with f32/bf16/f16/f64/int tensors, transposed and sliced
#                       views that share storages, a 0-d and an empty tensor;
#   torch_module.pth  — an nn.Module state_dict (OrderedDict carrying a _metadata attribute: BUILD);
#   torch_expected.json — for every flattened key: dtype, shape and the values (row-major, as f64).
import collections, json, sys
import torch

out = sys.argv[1]
torch.manual_seed(0)
sd = collections.OrderedDict()
sd["f32"] = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) * 0.25 - 3.0
sd["bf16"] = (torch.arange(10, dtype=torch.float32) * 0.3 - 1.1).to(torch.bfloat16)
sd["f16"] = (torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.7 + 1.0).to(torch.float16)
base = torch.arange(12, dtype=torch.float32).reshape(3, 4) * 1.5
sd["base"] = base
sd["transposed"] = base.t()                                   # [4, 3], strides (1, 4), shares base's storage
sd["slice"] = torch.arange(20, dtype=torch.float32)[5:15:2]   # offset 5, stride 2
sd["bf16_t"] = (torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.75).to(torch.bfloat16).t()
sd["f16_perm"] = (torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) / 7).to(torch.float16).permute(2, 0, 1)
sd["f64"] = torch.arange(3, dtype=torch.float64) / 3
sd["i64"] = torch.arange(5, dtype=torch.int64) - 2
sd["i32"] = torch.arange(4, dtype=torch.int32) * 3
sd["u8"] = torch.arange(7, dtype=torch.uint8) * 30
sd["scalar"] = torch.tensor(2.5)
sd["empty"] = torch.zeros(0, 3)
sd["nested"] = {"a": torch.ones(2), "b": {"c": torch.full((1, 2), -4.0)}}
torch.save(sd, f"{out}/torch_mixed.pth")

m = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
with torch.no_grad():
    m[0].weight.copy_(torch.arange(6, dtype=torch.float32).reshape(2, 3) - 2)
    m[0].bias.copy_(torch.tensor([0.5, -0.5]))
msd = m.state_dict()
torch.save(msd, f"{out}/torch_module.pth")

def flat(d, prefix, acc):
    for k, v in d.items():
        if isinstance(v, dict):
            flat(v, prefix + k + ".", acc)
        else:
            acc[prefix + k] = {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape),
                               "values": v.double().flatten().tolist()}
    return acc

exp = {"torch": torch.__version__, "mixed": flat(sd, "", {}), "module": flat(msd, "", {})}
json.dump(exp, open(f"{out}/torch_expected.json", "w"), indent=1)
print("ok", torch.__version__, sys.byteorder)

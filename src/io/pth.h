// Reader for PyTorch `torch.save` checkpoints (the zip format of torch ≥ 1.6), e.g. Wan2.1_VAE.pth
// and the umT5 encoder .pth.
//
// Format: a zip archive of stored (uncompressed) entries under one top folder whose name varies
// ("archive/", "vae_weights/", ...): `<top>/data.pkl` is a pickle of the state dict whose tensors
// reference raw storages `<top>/data/<key>` through persistent ids; `<top>/byteorder` ("little" or
// "big", absent in older files = little). Zip64 records and data descriptors (both written by
// torch) are handled; compressed entries are rejected.
//
// Safety: the pickle is interpreted by a small stack machine that never executes code. Only an
// allow-list of globals is accepted (collections.OrderedDict, torch._utils._rebuild_tensor{,_v2,_v3},
// torch._utils._rebuild_parameter, torch.<X>Storage, torch.UntypedStorage, torch dtypes such as
// torch.float32); any other global is an error naming it. Every storage size, tensor offset, shape
// and stride is bounds-checked against the storage it views.
//
// Result: a TensorSource whose names are the state dict's keys; nested dicts are flattened with '.'
// ({"model": {"w": t}} → "model.w"); non-tensor leaves (ints, strings, None) are skipped. Dtypes:
// f32, f16, bf16, f64, i64, i32, u8 (bool storages read as u8). Contiguous little-endian tensors view
// the mapped file (zero copy); strided views (a transposed tensor, a slice) and big-endian files are
// materialised as contiguous little-endian copies owned by the source.
//
// Errors are wanrt::Error "[pth] what, where (file, key), what to do".
#pragma once

#include <memory>
#include <string>

#include "io/tensor_source.h"

namespace wanrt {

std::shared_ptr<TensorSource> open_pth(const std::string& path);

}  // namespace wanrt

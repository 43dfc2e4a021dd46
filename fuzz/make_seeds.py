#!/usr/bin/env python3
"""Writes the seed corpora fuzz/seeds/<target>/ from the fixtures (../shared/fixtures, tests/data).

Run once when the fixtures change (SPIECE_MODEL=<a small spiece.model> adds a tokenizer seed; the
committed one is spm_train --vocab_size=330 --normalization_rule_name=identity, T5 ids, on three
sentences); the seeds are committed (small: each file a few KB), so CI and
scripts/fuzz.sh need neither python nor the shared fixtures. Every seed is a valid input or a
valid input's prefix byte + a valid body, so the fuzzer starts from files that load.
"""
import json, os, struct, sys, zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.normpath(os.path.join(ROOT, '..', 'shared', 'fixtures'))
DATA = os.path.join(ROOT, 'tests', 'data')
OUT = os.path.join(ROOT, 'fuzz', 'seeds')


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def st_read(path):
    raw = open(path, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    return h, raw[8 + n:]


def st_write(tensors, metadata=None, pad_to=8):
    """tensors: [(name, dtype, shape, bytes)] → safetensors bytes."""
    header, off, body = {}, 0, b''
    if metadata:
        header['__metadata__'] = metadata
    for name, dtype, shape, data in tensors:
        header[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [off, off + len(data)]}
        body += data
        off += len(data)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % pad_to)
    return struct.pack('<Q', len(h)) + h + body


def small_tensors(path, limit_bytes, count, keep=lambda k: True):
    h, body = st_read(path)
    md = h.pop('__metadata__', None)
    items = sorted(((k, v) for k, v in h.items() if keep(k)), key=lambda kv: kv[1]['data_offsets'][1] - kv[1]['data_offsets'][0])
    out = []
    for k, v in items:
        b, e = v['data_offsets']
        if e - b <= limit_bytes and len(out) < count:
            out.append((k, v['dtype'], v['shape'], body[b:e]))
    return out, md


def main():
    # safetensors: a few small tensors of each fixture (several dtypes, scalar shapes, metadata).
    for f in ['t5.safetensors', 'schedulers.safetensors', 'dit_t2v.safetensors', 'vae.safetensors', 'ops.safetensors']:
        ts, md = small_tensors(os.path.join(FIX, f), 1024, 6)
        md = {k: v for k, v in (md or {}).items() if k == 'config'}
        put('safetensors', f, st_write(ts, md))
    put('safetensors', 'empty.safetensors', st_write([]))

    # safetensors_index: index files over the two shards the target writes (a: F32 [2,2], b: F32 [2]).
    put('safetensors_index', 'two.json', json.dumps({'metadata': {'total_size': 24}, 'weight_map': {'a': 'a-00001.safetensors', 'b': 'b-00002.safetensors'}}).encode())
    put('safetensors_index', 'one.json', json.dumps({'weight_map': {'a': 'a-00001.safetensors'}}).encode())

    # pth: whole small checkpoints (prefix byte 0) and their pickles alone (prefix byte 1).
    for p in [os.path.join(DATA, 'torch_module.pth'), os.path.join(DATA, 'torch_mixed.pth'), os.path.join(FIX, 't5_weights.pth')]:
        name = os.path.basename(p)
        if os.path.getsize(p) <= 64 * 1024:
            put('pth', name, b'\x00' + open(p, 'rb').read())
        with zipfile.ZipFile(p) as z:
            pkl = [n for n in z.namelist() if n.endswith('/data.pkl')][0]
            put('pth', name + '.pkl', b'\x01' + z.read(pkl))
    # A plain pickled dict of one tensor viewing storage '0' of the wrapper (256 bytes: 64 f32).
    pkl = (b'\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00wq\x02ctorch._utils\n_rebuild_tensor_v2\nq\x03'
           b'((X\x07\x00\x00\x00storageq\x04ctorch\nFloatStorage\nq\x05X\x01\x00\x00\x000q\x06X\x03\x00\x00\x00cpuq\x07K@tq\x08QK\x00K\x04K\x04\x86q\t'
           b'K\x04K\x01\x86q\n\x89h\x00)Rq\x0btq\x0cRq\rs.')
    put('pth', 'one_tensor.pkl', b'\x01' + pkl)

    # gguf: the fixture with one tensor of every ggml type (20 KB).
    put('gguf', 'gguf_types.gguf', open(os.path.join(FIX, 'gguf_types.gguf'), 'rb').read())

    # config: the fixtures' configs, and the official release configs, one per model (prefix byte).
    def cfg(path, key='config'):
        h, _ = st_read(path)
        return h['__metadata__'][key].encode()
    put('config', 'dit_t2v.json', b'\x00' + cfg(os.path.join(FIX, 'dit_t2v.safetensors')))
    put('config', 'dit_official_1.3b.json', b'\x00' + json.dumps({'_class_name': 'WanModel', 'model_type': 't2v', 'patch_size': [1, 2, 2], 'text_len': 512, 'in_dim': 16, 'dim': 1536, 'ffn_dim': 8960, 'freq_dim': 256, 'text_dim': 4096, 'out_dim': 16, 'num_heads': 12, 'num_layers': 30, 'window_size': [-1, -1], 'qk_norm': True, 'cross_attn_norm': True, 'eps': 1e-06}).encode())
    put('config', 'dit_i2v.json', b'\x00' + json.dumps({'model_type': 'i2v', 'in_dim': 36, 'dim': 5120, 'ffn_dim': 13824, 'num_heads': 40, 'num_layers': 40}).encode())
    put('config', 't5.json', b'\x01' + cfg(os.path.join(FIX, 't5.safetensors')))
    put('config', 'clip.json', b'\x02' + cfg(os.path.join(FIX, 'clip.safetensors')))
    put('config', 'vae.json', b'\x03' + cfg(os.path.join(FIX, 'vae.safetensors')))

    # tokenizer: prompts (prefix 1); a SentencePiece model when spm_train is there (prefix 0).
    for i, p in enumerate(['a cat surfing at sunset', '  A &amp; B\t\u00e2\u0080\u0094 caf\u00c3\u00a9  \n', '\u4e00\u53ea\u732b \U0001F600 &lt;b&gt;', '']):
        put('tokenizer', f'prompt{i}.txt', b'\x01' + p.encode('utf-8', 'surrogatepass'))
    spm = os.environ.get('SPIECE_MODEL')
    if spm and os.path.exists(spm) and os.path.getsize(spm) <= 256 * 1024:
        put('tokenizer', 'spiece.model', b'\x00' + open(spm, 'rb').read())

    # weights: small tensors of real checkpoints under their official names (prefix: the model).
    for prefix, f in [(0, 'dit_t2v.safetensors'), (1, 'vae.safetensors'), (2, 'clip_weights.pth'), (3, 't5.safetensors')]:
        path = os.path.join(FIX, f)
        if f.endswith('.pth'):
            continue
        ts, _ = small_tensors(path, 2048, 40, keep=lambda k: not k.startswith(('in.', 'out.', 'mid.')))
        put('weights', f, bytes([prefix]) + st_write(ts))

    # lora: one small file per format fuzz_lora's model (dit_t2v's shape: dim 64, ffn 128) takes, each
    # read merged and at run time (prefix 3).
    def f32(n, v=0.01):
        return struct.pack(f'<{n}f', *([v] * n))
    def pair(down, up, r, i, o):
        return [(down, 'F32', [r, i], f32(r * i)), (up, 'F32', [o, r], f32(o * r))]
    comfy = pair('diffusion_model.blocks.0.self_attn.q.lora_down.weight',
                 'diffusion_model.blocks.0.self_attn.q.lora_up.weight', 2, 64, 64)
    comfy += [('diffusion_model.blocks.0.self_attn.q.alpha', 'F32', [], f32(1, 4.0))]
    comfy += pair('diffusion_model.blocks.1.ffn.2.lora_down.weight', 'diffusion_model.blocks.1.ffn.2.lora_up.weight',
                  2, 128, 64)
    put('lora', 'comfy.safetensors', b'\x03' + st_write(comfy))
    musubi = pair('lora_unet_blocks_0_ffn_0.lora_down.weight', 'lora_unet_blocks_0_ffn_0.lora_up.weight', 2, 64, 128)
    musubi += [('lora_unet_blocks_0_ffn_0.alpha', 'F32', [], f32(1, 2.0))]
    put('lora', 'musubi.safetensors', b'\x03' + st_write(musubi))
    peft = pair('transformer.blocks.1.attn1.to_k.lora_A.weight', 'transformer.blocks.1.attn1.to_k.lora_B.weight',
                2, 64, 64)
    put('lora', 'diffusers.safetensors', b'\x03' + st_write(peft, {'lora_alpha': '4'}))
    diff = [('blocks.0.self_attn.o.diff', 'F32', [64, 64], f32(64 * 64)),
            ('blocks.0.self_attn.o.diff_b', 'F32', [64], f32(64)),
            ('blocks.1.diff_m', 'F32', [1, 6, 64], f32(6 * 64))]
    put('lora', 'lightx2v_diff.safetensors', b'\x03' + st_write(diff))

    # y4m: each chroma layout the reader takes, 2 frames of 4×2.
    def y4m(c, planes):
        hdr = f'YUV4MPEG2 W4 H2 F16:1 Ip A1:1 {c}\n'.encode()
        frame = bytes(range(16, 16 + planes))
        return hdr + (b'FRAME\n' + frame) * 2
    put('y4m', 'c444.y4m', y4m('C444', 24))
    put('y4m', 'c420jpeg.y4m', y4m('C420jpeg', 8 + 2 + 2))
    put('y4m', 'c422.y4m', y4m('C422', 8 + 4 + 4))
    put('y4m', 'mono.y4m', y4m('Cmono', 8))
    put('y4m', 'full.y4m', y4m('C444 XCOLORRANGE=FULL', 24))


if __name__ == '__main__':
    sys.exit(main())

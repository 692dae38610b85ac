"""Laws of quantisation: fewer bits never move more bytes; scales and zero points are paid for;
dequantisation is costed on the unit that does it and GEMMs run at their input dtype's rate;
int8/fp8 GEMMs run where the preset has the tensor path and are refused, with the reason, where not."""

import pytest

from llmsim.config.base import DType
from llmsim.config.loader import load_hardware, load_model, make_scenario
from llmsim.config.quant import QUANT_PRESETS, quant_fields
from llmsim.devices.base import build_device
from llmsim.engine import simulate_one_step
from llmsim.errors import ConfigError, UnsupportedOpError
from llmsim.graph import factory as f
from llmsim.graph.lower import lower_decode
from llmsim.graph.ops import OpKind

BITS_ORDER = ["w16a16", "w8a16", "w4a16"]


def _sc(q, **kw):
    return make_scenario(quant_fields(q) | kw)


def _weight_bytes(model, sc):
    g = lower_decode(model, sc, context=16)
    return sum(g.nodes[n]["op"].read.weight for n in g)


@pytest.mark.parametrize("name", ["llama-2-7b", "opt-6.7b", "mixtral-8x7b"])
def test_fewer_weight_bits_never_move_more_bytes(name):
    m = load_model(name)
    b = [_weight_bytes(m, _sc(q)) for q in BITS_ORDER]
    assert b[0] > b[1] > b[2]
    # smaller groups carry more scales; a zero point adds bytes
    g = [_weight_bytes(m, _sc("w4a16", group_size=gs)) for gs in (32, 64, 128, 0)]
    assert g == sorted(g, reverse=True) and g[-1] < g[0]
    assert _weight_bytes(m, _sc("w4a16", zero_point=False)) < b[2]


def test_quantised_weights_carry_their_scale_and_zero_point_bytes():
    op = f.matmul("w", 1, 4096, 1000, dtype=DType.fp16, weight_dtype=DType.int4, group_size=128,
                  scale_dtype=DType.fp16, zero_point=True)
    groups = 1000 * 4096 // 128
    assert op.read.weight == 4096 * 1000 * 0.5 + groups * (2 + 0.5)
    per_col = f.matmul("w", 1, 4096, 1000, dtype=DType.fp16, weight_dtype=DType.int8, scale_dtype=DType.fp16)
    assert per_col.read.weight == 4096 * 1000 + 1000 * 2


def test_kv_int8_halves_kv_bytes_and_adds_its_dequantisation():
    m, dev = load_model("llama-2-7b"), build_device(load_hardware("h100"))
    att = {}
    for kv in ("fp16", "int8"):
        g = lower_decode(m, make_scenario({"kv_dtype": kv}), context=1024)
        att[kv] = next(g.nodes[n]["op"] for n in g if g.nodes[n]["op"].kind is OpKind.attention)
    assert att["int8"].read.kv * 2 == att["fp16"].read.kv
    assert dev.cost(att["int8"]).stats["quant_flops"] > 0 and "quant_flops" not in dev.cost(att["fp16"]).stats


def _decode_s(hw, model, q, batch=1, context=256):
    r, _ = simulate_one_step(load_hardware(hw), load_model(model), _sc(q), "decode", batch, context=context)
    return r


def test_w4a16_on_h100_decodes_faster_than_fp16_by_less_than_the_byte_ratio_and_more_than_2x():
    m = load_model("llama-2-7b")
    ratio = _weight_bytes(m, _sc("w16a16")) / _weight_bytes(m, _sc("w4a16"))
    speedup = _decode_s("h100", "llama-2-7b", "w16a16").latency_s / _decode_s("h100", "llama-2-7b", "w4a16").latency_s
    assert 2.0 < speedup < ratio < 4.0


def test_dequantisation_is_charged_on_the_cuda_cores_and_gemms_run_at_the_activation_rate():
    dev = build_device(load_hardware("h100"))
    M, K, N = 4096, 4096, 4096  # compute-bound: the int4 weights cannot make the fp16 math faster
    fp16 = f.matmul("w", M, K, N, dtype=DType.fp16)
    w4 = f.matmul("w", M, K, N, dtype=DType.fp16, weight_dtype=DType.int4, group_size=128, scale_dtype=DType.fp16,
                  zero_point=True)
    c = dev.cost(w4)
    assert c.stats["quant_s"] > 0 and c.energy_j["compute"] > dev.cost(fp16).energy_j["compute"]
    assert c.device_seconds >= fp16.flops / dev.spec.tensor.peak_flops_per_s(DType.fp16)
    w8a8 = f.matmul("w", M, K, N, dtype=DType.int8, weight_dtype=DType.int8, scale_dtype=DType.fp16,
                    out_dtype=DType.fp16)
    assert dev.cost(w8a8).device_seconds < dev.cost(fp16).device_seconds  # int8 tensor path: 2x the rate


def test_dequantisation_adds_on_a_cpu_whose_cores_do_both():
    dev = build_device(load_hardware("xeon-gold-6154"))
    kw = dict(dtype=DType.fp16, weight_dtype=DType.int8, scale_dtype=DType.fp16)
    op = f.matmul("w", 64, 2048, 2048, **kw)
    c = dev.cost(op)
    plain = dev.cycle_cost(op)
    assert c.device_seconds == pytest.approx(plain.device_seconds + c.stats["quant_s"])


def test_fp8_runs_on_h100_and_is_refused_on_t4_with_the_reason():
    assert _decode_s("h100", "llama-68m", "fp8").latency_s > 0
    with pytest.raises(UnsupportedOpError, match=r"t4 .*matmul: its 'tensor' unit has no fp8 path"):
        _decode_s("t4", "llama-68m", "fp8")


@pytest.mark.parametrize("hw", ["a100", "t4"])
def test_w8a8_uses_the_int8_tensor_path_on_ampere_and_turing(hw):
    assert _decode_s(hw, "llama-68m", "w8a8").latency_s > 0


@pytest.mark.parametrize("hw", ["h100", "npu-ws-128", "xeon-gold-6154", "pim"])
@pytest.mark.parametrize("q", sorted(QUANT_PRESETS))
def test_every_scheme_is_costed_or_refused_in_one_line_on_every_device_kind(hw, q):
    try:
        assert _decode_s(hw, "llama-68m", q).latency_s > 0
    except UnsupportedOpError as e:
        assert "\n" not in str(e) and ("path" in str(e) or "quantise" in str(e))


def test_pim_refuses_weight_only_quantisation_because_its_banks_cannot_dequantise():
    with pytest.raises(UnsupportedOpError, match="bank_mac' unit reads operands in place"):
        _decode_s("pim", "llama-68m", "w4a16")


def test_dtype_int8_names_every_op_kind_that_cannot_run_in_it():
    with pytest.raises(UnsupportedOpError) as e:
        simulate_one_step(load_hardware("h100"), load_model("gpt2"),
                          make_scenario({"weight_dtype": "int8", "act_dtype": "int8", "kv_dtype": "int8"}), "decode", 1,
                          context=8)
    msg = str(e.value)
    for kind in ("norm (layernorm)", "activation (gelu)", "elementwise (add)"):
        assert kind in msg
    assert "--quant" in msg and "\n" not in msg


@pytest.mark.parametrize("fields,match", [
    ({"group_size": -1}, "group_size"),
    ({"scale_dtype": "int8"}, "scale_dtype"),
    ({"gemm_dtype": "int4"}, "gemm_dtype"),
])
def test_bad_quantisation_fields_are_refused_by_name(fields, match):
    with pytest.raises(ConfigError, match=match):
        make_scenario(fields)


def test_unknown_quant_scheme_is_refused_naming_the_option():
    with pytest.raises(ConfigError, match="--quant 'w3a16'"):
        quant_fields("w3a16")


def test_bad_quant_cli_input_gives_one_line_errors(run_cli):
    for args, match in ((["--quant", "w3a16"], "--quant 'w3a16'"), (["--quant", "w4a16", "--dtype", "int8"], "--quant"),
                        (["--quant", "w4a16", "--set", "scenario.group_size=-8"], "group_size")):
        p = run_cli("run", "--hw", "h100", "--model", "llama-68m", "--gen", "2", *args)
        assert p.returncode == 2 and match in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


@pytest.mark.parametrize("name", ["llama-2-7b", "opt-350m", "olmoe-1b-7b"])
@pytest.mark.parametrize("q", ["w16a16", "w8a16", "w4a16"])
def test_stored_weight_bytes_equal_what_a_dense_decode_reads_plus_the_tables(name, q):
    from llmsim.config.quant import stored_weight_bytes

    m = load_model(name)
    if m.moe:  # every expert read: a batch large enough to touch them all
        m = m.model_copy(update={"moe": m.moe.model_copy(update={"top_k": m.moe.experts})})
    sc = _sc(q)
    g = lower_decode(m, sc, context=8, batch=1)
    ops = [g.nodes[n]["op"] for n in g]
    gathered = sum(o.read.weight for o in ops if o.kind is OpKind.embedding)
    emb = m.embedding_params()
    tables = emb["tok_embed"] + emb.get("pos_embed", 0)
    read = sum(o.read.weight for o in ops) - gathered
    tied = tables * sc.act_dtype.bytes if not m.tied_embeddings else emb.get("pos_embed", 0) * sc.act_dtype.bytes
    assert read + tied == pytest.approx(stored_weight_bytes(m, sc), rel=1e-12)


@pytest.mark.parametrize("name", ["llama-2-70b", "mixtral-8x7b", "olmoe-1b-7b", "qwen2-7b", "flan-t5-small"])
def test_gemm_weights_and_unquantised_parameters_add_up_to_the_count(name):
    m = load_model(name)
    gemm = sum(k * n * c for k, n, c in m.gemm_shapes())
    biases = m.parameter_count() - gemm - m.unquantised_params()
    assert biases == (m.n_layers * m.q_dim + 2 * m.n_layers * m.kv_dim if m.has_qkv_bias else 0)


@pytest.mark.parametrize("hw", ["h100", "npu-ws-128", "xeon-gold-6154"])
def test_fewer_weight_bits_never_move_more_dram_bytes_on_a_device(hw):
    dram = [_decode_s(hw, "llama-68m", q).bytes_by_level["dram"] for q in BITS_ORDER]
    assert dram[0] > dram[1] > dram[2]

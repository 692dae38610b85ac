"""The PyTorch reference: cache-consistent, equal to Hugging Face's GPT-2, and validate runs on CPU."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from llmsim.cli import main  # noqa: E402
from llmsim.config.loader import load_model  # noqa: E402
from llmsim.errors import LlmsimError  # noqa: E402
from llmsim.reference.compare import parse_cases  # noqa: E402
from llmsim.reference.model import ReferenceModel, param_count  # noqa: E402
from llmsim.reference.opclass import op_class  # noqa: E402

TINY = [(["n_layers"], 2), (["d_model"], 64), (["n_heads"], 4), (["d_ff"], 128), (["vocab_size"], 97)]


@pytest.mark.parametrize("name", ["gpt2", "opt-350m", "tinyllama-1.1b"])
def test_prefill_then_decode_with_cache_equals_full_forward(name):
    extra = [(["embed_dim"], 32)] if name == "opt-350m" else []
    extra += [(["n_kv_heads"], 2)] if name == "tinyllama-1.1b" else []
    spec = load_model(name, TINY + extra)
    m = ReferenceModel(spec).eval()
    assert param_count(m) == spec.parameter_count()
    ids = torch.randint(0, spec.vocab_size, (2, 11))
    with torch.no_grad():
        full = m(ids, m.new_cache(2, 16), 0, all_logits=True)
        cache = m.new_cache(2, 16)
        pre = m(ids[:, :8], cache, 0)
        steps = [m(ids[:, i:i + 1], cache, i) for i in range(8, 11)]
    torch.testing.assert_close(pre, full[:, 7], rtol=1e-4, atol=1e-5)
    for i, s in zip(range(8, 11), steps, strict=True):
        torch.testing.assert_close(s, full[:, i], rtol=1e-4, atol=1e-5)


def test_gpt2_logits_equal_hugging_face_gpt2():
    transformers = pytest.importorskip("transformers")
    spec = load_model("gpt2", TINY + [(["max_positions"], 32)])
    ours = ReferenceModel(spec, seed=3).eval()
    cfg = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, n_inner=128, vocab_size=97, n_positions=32,
                                  activation_function="gelu_new", resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    sd = {"transformer.wte.weight": ours.tok.weight, "transformer.wpe.weight": ours.pos.weight,
          "transformer.ln_f.weight": ours.final_norm.weight, "transformer.ln_f.bias": ours.final_norm.bias}
    for i, L in enumerate(ours.layers):
        p = f"transformer.h.{i}."
        sd |= {p + "ln_1.weight": L.norm1.weight, p + "ln_1.bias": L.norm1.bias,
               p + "ln_2.weight": L.norm2.weight, p + "ln_2.bias": L.norm2.bias,
               p + "attn.c_attn.weight": L.qkv.weight.T, p + "attn.c_attn.bias": L.qkv.bias,
               p + "attn.c_proj.weight": L.out.weight.T, p + "attn.c_proj.bias": L.out.bias,
               p + "mlp.c_fc.weight": L.up.weight.T, p + "mlp.c_fc.bias": L.up.bias,
               p + "mlp.c_proj.weight": L.down.weight.T, p + "mlp.c_proj.bias": L.down.bias}
    missing = hf.load_state_dict({k: v.detach().clone() for k, v in sd.items()}, strict=False)
    assert not missing.unexpected_keys
    ids = torch.randint(0, 97, (2, 12))
    with torch.no_grad():
        ref = hf(ids).logits
        got = ours(ids, ours.new_cache(2, 12), 0, all_logits=True)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


def test_op_class_maps_kernel_and_aten_names():
    assert op_class("sm90_xmma_gemm_f16f16_f16f32_f32_tn_n_tilesize128x128x64") == "matmul"
    assert op_class("aten::addmm") == "matmul"
    assert op_class("void flash_fwd_splitkv_kernel<Flash_fwd_kernel_traits<64>>") == "attention"
    assert op_class("void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<c10::Half>") == "norm"
    assert op_class("aten::gelu") == "activation"
    assert op_class("aten::view") is None
    assert op_class("aten::add") == "elementwise"


def test_cases_are_parsed_and_bad_ones_refused():
    assert parse_cases("prefill:1x128,decode:8x512") == [("prefill", 1, 128), ("decode", 8, 512)]
    for bad in ("prefill:1", "train:1x2", "decode:0x4", ""):
        with pytest.raises(LlmsimError):
            parse_cases(bad)


def test_validate_cpu_runs_on_a_tiny_case(tmp_path):
    out = tmp_path / "v.json"
    r = CliRunner().invoke(main, ["validate", "--hw", "xeon-gold-6154", "--model", "gpt2", "--set", "model.n_layers=1",
                                  "--cases", "prefill:1x8,decode:2x16", "--iters", "2", "--warmup", "1",
                                  "--json", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert [(x["phase"], x["batch"], x["seq"]) for x in d["rows"]] == [("prefill", 1, 8), ("decode", 2, 16)]
    for row in d["rows"]:
        assert row["measured_s"] > 0 and row["predicted_s"] > 0 and row["dtype"] == "fp32"
        assert abs(sum(row["predicted_share"].values()) - 1) < 1e-9
    assert set(d["summary"]["mape"]) == {"prefill/eager", "decode/eager"}


def test_graph_mode_on_cpu_is_refused():
    r = CliRunner().invoke(main, ["validate", "--hw", "xeon-gold-6154", "--model", "gpt2", "--set", "model.n_layers=1",
                                  "--mode", "graph", "--cases", "decode:1x8", "--iters", "1"])
    assert r.exit_code == 2 and "CUDA graphs" in r.output


def test_annotated_profile_attributes_every_call_to_an_op_kind():
    from llmsim.graph.ops import OpKind
    from llmsim.reference import model as refmodel
    from llmsim.reference.timing import Runner

    r = Runner(load_model("gpt2", [(["n_layers"], 2)]), device="cpu")
    calls = r.calls("decode", 2, 16)
    # every kind of a one-device graph (collectives exist only between devices), nothing name-guessed
    assert {k.split(".")[0] for k in calls} == {k.value for k in OpKind} - {"collective"}
    assert all(c["seconds"] > 0 for c in calls.values())
    assert calls["attention"]["kernels"] == 2 and calls["matmul"]["kernels"] == 2 * 4 + 1
    assert calls["embedding.tokens+positions"]["kernels"] == 5 and calls["activation.gelu"]["kernels"] == 2
    assert not refmodel._annotating  # timing runs carry no profiler ranges
    shares = r.profile("prefill", 1, 8)
    assert set(shares) == {k.value for k in OpKind} - {"collective"}


def test_pytorch_eager_preset_counts_are_the_references():
    """framework/pytorch-eager.yaml's calls per op are what a profile of the reference counts, the same
    for every GPT-2 size (one table, no per-model constants)."""
    from llmsim.calibrate.framework import calls_per_op
    from llmsim.config.loader import load_hardware

    fw = load_hardware("h100").framework
    for name, layers in (("gpt2", 2), ("gpt2-xl", 1), ("tinyllama-1.1b", 22)):
        counted = calls_per_op(load_model(name, [(["n_layers"], layers)]), "decode", 1, 32)
        for key, c in counted.items():
            want = fw.calls(*key.split("."))
            assert (round(c["kernels"]), round(c["host_calls"])) == (want.kernels, want.host_calls), (name, key, c)


def test_host_call_seconds_is_microseconds():
    from llmsim.calibrate.framework import host_call_seconds

    assert 1e-8 < host_call_seconds(repeats=2, loops=50) < 1e-4


def test_gpu_fidelity_measure_and_score_round_trip_on_cpu(tmp_path, capsys):
    """The GPU session runs `gpu_fidelity.py measure` once: its JSON must score without a GPU."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("gpu_fidelity", root / "benchmarks" / "gpu_fidelity.py")
    gf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gf)
    out = tmp_path / "f.json"
    gf.measure(str(out), ["gpt2"], iters=2, warmup=1, device="cpu", modes=["eager"],
               cases=[("prefill", 1, 8), ("decode", 2, 16)], overrides=[(["n_layers"], 1)])
    data = json.loads(out.read_text())
    assert data["host_call_s"] > 0 and set(data["calls"]["gpt2"]) == {"prefill", "decode"}
    res = gf.score(str(out), "xeon-gold-6154", markdown=True)
    assert len(res["rows"]) == 2 and all(r["predicted_s"] > 0 for r in res["rows"])
    assert "kernels per step, gpt2 decode" in capsys.readouterr().out


def test_cuda_profile_attribution_on_synthetic_events():
    """The CUDA branch of the attribution, on events shaped like torch.profiler's: kernels hang on the ATen op
    that launched them; a kernel outside any llmsim range falls back to its name."""
    from collections import namedtuple
    from types import SimpleNamespace

    from llmsim.reference.timing import attribute

    K = namedtuple("Kernel", "name device duration")
    cpu = torch.autograd.DeviceType.CPU

    def ev(name, parent=None, kernels=()):
        e = SimpleNamespace(name=name, device_type=cpu, cpu_parent=parent, cpu_children=[], kernels=list(kernels),
                            self_cpu_time_total=1.0)
        if parent is not None:
            parent.cpu_children.append(e)
        return e

    att = ev("llmsim::attention")
    kvw = ev("llmsim::kv_write")
    events = [att, ev("aten::view", att), ev("aten::transpose", att),
              sdpa := ev("aten::scaled_dot_product_attention", att),
              ev("aten::_flash_attention_forward", sdpa, [K("flash_fwd_kernel", 0, 30.0)]),
              kvw, ev("aten::copy_", kvw, [K("elementwise_kernel", 0, 2.0)]), ev("aten::copy_", kvw,
                                                                                [K("elementwise_kernel", 0, 2.0)]),
              ev("aten::addmm", None, [K("sm90_xmma_gemm_f16f16", 0, 50.0), K("splitKreduce_kernel", 0, 3.0)])]
    got = attribute(events, "cuda")
    assert got["attention"] == {"seconds": pytest.approx(30e-6), "calls": 3, "host_only": 2, "kernels": 1}
    assert got["kv_write"] == {"seconds": pytest.approx(4e-6), "calls": 2, "host_only": 0, "kernels": 2}
    assert got["matmul"]["kernels"] == 2 and got["matmul"]["seconds"] == pytest.approx(53e-6)

"""Reference timing for `promptlab bench`: the same GGUF model, prompt text, thread count
and generation length through llama-cpp-python, which compiles llama.cpp from source.

Prints one JSON object per measured run with llama.cpp's own perf counters (the time
llama.cpp spent decoding the prompt and the generated tokens) and the Python wall clock.
Usage: python bench_reference.py MODEL PROMPT_FILE THREADS GEN_TOKENS RUNS CONTEXT
"""

import json
import sys
import time

import llama_cpp


def main() -> None:
    model, prompt_file, threads, gen_tokens, runs, n_ctx = sys.argv[1:7]
    threads, gen_tokens, runs, n_ctx = int(threads), int(gen_tokens), int(runs), int(n_ctx)
    llm = llama_cpp.Llama(
        model_path=model,
        n_ctx=n_ctx,
        n_batch=512,
        n_ubatch=512,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    text = open(prompt_file, encoding="utf-8").read()
    tokens = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    eog = [t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)]
    ctx = llm.ctx

    def ban_eog(_ids, logits):
        logits[eog] = -float("inf")
        return logits

    for index in range(runs + 1):  # the first run is an unmeasured warm-up
        llm.reset()
        llama_cpp.llama_perf_context_reset(ctx)
        start = time.perf_counter()
        llm.eval(tokens)
        prompt_done = time.perf_counter()
        for _ in range(gen_tokens):
            token = llm.sample(temp=0.0, logits_processor=ban_eog)
            if _ == gen_tokens - 1:
                break
            llm.eval([token])
        end = time.perf_counter()
        perf = llama_cpp.llama_perf_context(ctx)
        if index == 0:
            continue
        print(
            json.dumps(
                {
                    "prompt_tokens": len(tokens),
                    "gen_tokens": gen_tokens,
                    "llama_prompt_tokens_per_s": perf.n_p_eval / (perf.t_p_eval_ms / 1000.0),
                    "llama_gen_tokens_per_s": perf.n_eval / (perf.t_eval_ms / 1000.0),
                    "llama_n_eval": perf.n_eval,
                    "wall_prompt_tokens_per_s": len(tokens) / (prompt_done - start),
                    "wall_gen_tokens_per_s": gen_tokens / (end - prompt_done),
                    "version": llama_cpp.__version__,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()

//! Choosing each sequence's next token: the sampler chain, the grammar when there is
//! one, and the chosen token's log-probability.

use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;

use super::Sequence;

/// The natural-log probability of `token` under the model's raw distribution (the
/// softmax of its logits, before temperature or any other sampling setting).
pub(super) fn token_logprob(logits: &[f32], token: LlamaToken) -> f64 {
    let Some(&chosen) = usize::try_from(token.0).ok().and_then(|i| logits.get(i)) else {
        return f64::NEG_INFINITY;
    };
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    chosen as f64 - max - sum.ln()
}

/// The chain's choice, constrained by the grammar when there is one. As in llama.cpp's
/// common sampler, the grammar first only checks the chosen token; the full-vocabulary
/// mask runs only when that token is not allowed. None when the grammar allows no token
/// at all (a schema that cannot be satisfied, such as `minimum` above `maximum`): no
/// token is accepted then, because llama.cpp aborts the process when a grammar that
/// has not ended accepts the end of text.
pub(super) fn pick_token(
    ctx: &llama_cpp_2::context::LlamaContext<'_>,
    sequence: &mut Sequence,
    index: i32,
) -> Option<LlamaToken> {
    let Some(grammar) = sequence.grammar.as_mut() else {
        // sample() applies the chain and accepts the token into it.
        return Some(sequence.sampler.sample(ctx, index));
    };
    let mut candidates = ctx.token_data_array_ith(index);
    candidates.apply_sampler(&mut sequence.sampler);
    let chosen = candidates.selected_token();
    let allowed = chosen.is_some_and(|token| {
        let mut single =
            LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 1.0, 0.0)], false);
        single.apply_sampler(grammar);
        single.data.first().is_some_and(|d| d.logit().is_finite())
    });
    let token = match (allowed, chosen) {
        (true, Some(token)) => token,
        _ => {
            let mut candidates = ctx.token_data_array_ith(index);
            candidates.apply_sampler(grammar);
            if !candidates.data.iter().any(|d| d.logit().is_finite()) {
                return None;
            }
            candidates.apply_sampler(&mut sequence.sampler);
            candidates.selected_token()?
        }
    };
    grammar.accept(token);
    sequence.sampler.accept(token);
    Some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log-softmax of the chosen token's logit, stable for large logits.
    #[test]
    fn token_logprob_is_the_log_softmax() {
        let logits = [1.0f32, 2.0, 3.0];
        let sum: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
        for (i, &l) in logits.iter().enumerate() {
            let want = l as f64 - sum.ln();
            let got = token_logprob(&logits, LlamaToken(i as i32));
            assert!((got - want).abs() < 1e-12, "{got} {want}");
        }
        let big = [1000.0f32, 1000.0];
        assert!((token_logprob(&big, LlamaToken(0)) - 0.5f64.ln()).abs() < 1e-12);
        assert_eq!(token_logprob(&big, LlamaToken(5)), f64::NEG_INFINITY);
    }
}

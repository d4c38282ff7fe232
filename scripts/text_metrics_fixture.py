"""Writes tests/fixtures/text-metrics.json: output/reference pairs with the scores the
reference implementations give (rouge-score for ROUGE-1/2/L F-measure, sacrebleu's
sentence_bleu and sentence_chrf with their defaults). promptlab's metrics must match them
to 1e-6. Run with a Python that has `rouge-score` and `sacrebleu` installed:

    python3 scripts/text_metrics_fixture.py
"""
import json
import pathlib

import rouge_score
import sacrebleu
from rouge_score import rouge_scorer

PAIRS = [
    ("The cat sat on the mat.", "The cat sat on the mat."),
    ("The cat sat on the mat.", "A cat was sitting on the mat."),
    ("the quick brown fox jumps over the lazy dog", "The quick brown fox jumped over the lazy dog."),
    ("Paris is the capital of France.", "The capital of France is Paris."),
    ("", "Something to say."),
    ("Only an output.", ""),
    ("", ""),
    ("Hello", "Hello"),
    ("Hello world", "Goodbye moon"),
    ("It costs $1,000.50 in 2024-2025.", "The price is $1,000.50 for 2024-2025."),
    ("Dr. Smith arrived at 3.30 p.m., didn't he?", "Dr. Smith arrived at 3.30 pm, did not he?"),
    ("Résumé: naïve café owner in São Paulo", "Resume: naive cafe owner in Sao Paulo"),
    ("Straße und Übergröße", "Strasse und Uebergroesse"),
    ("東京は日本の首都です", "日本の首都は東京です"),
    ("Reset your password from the login page.", "To reset your password, use the login page."),
    ("Refund issued for order #4521.", "Order #4521 has been refunded."),
    ("I'm sorry, I can't help with that.", "I am sorry, but I cannot help with that request."),
    ("positive", "positive"),
    ("negative", "positive"),
    ("The answer is 42", "42"),
    ("42", "The answer is 42"),
    ("A B C D E F G", "A B C D E F G"),
    ("a a a a a", "a a b b"),
    ("the the the the", "the cat"),
    ("New York-based start-up raises $5M.", "A start-up based in New York raised $5 million."),
    ("x-ray, 3-4 times a day (max.)", "X-ray 3-4 times daily, at most."),
    ("Use `git commit -m \"msg\"` to save.", "Save with git commit -m \"msg\"."),
    ("<b>Bold</b> &amp; brave", "Bold & brave"),
    ("Line one\nLine two\nLine three", "Line one Line two Line three"),
    ("   padded output   ", "padded output"),
    ("Email me at ada@example.com!", "Write to ada@example.com."),
    ("The meeting is on Monday at 10am.", "The meeting takes place Monday, 10 a.m."),
    ("Summary: sales grew 12% in Q3, driven by exports.", "Sales rose 12% in the third quarter thanks to exports."),
    ("He said: 'Stop!' and left.", "He said \"stop\" and then left."),
    ("one two three four five six seven eight nine ten", "one two three four five six seven eight nine ten eleven"),
    ("one two three four five six seven eight nine ten eleven", "one two three four five six seven eight nine ten"),
    ("ten nine eight seven six five four three two one", "one two three four five six seven eight nine ten"),
    ("Translate: Le chat est noir.", "The cat is black."),
    ("The cat is black.", "The cat is black"),
    ("The cat is black", "the cat is black."),
    ("3.14159", "3.14"),
    ("1,2,3,4", "1, 2, 3, 4"),
    ("well-known well-known well-known", "well known"),
    ("Apples, oranges, and bananas.", "Bananas, apples and oranges"),
    ("It's 5 o'clock somewhere.", "It is five o'clock somewhere."),
    ("Contact: +1 (555) 010-9999", "Phone +1 555 010 9999"),
    ("The model returned {\"label\": \"positive\"}", "{\"label\": \"positive\"}"),
    ("Tokens: [CLS] hello [SEP]", "hello"),
    ("a", "b"),
    ("a b", "a b c d e f g h i j k l m n o p"),
    ("Climate change affects sea levels, weather patterns and biodiversity worldwide.",
     "Worldwide, climate change is altering weather patterns, sea levels and biodiversity."),
    ("The defendant was found not guilty on all counts.", "The jury acquitted the defendant of every charge."),
    ("Press Ctrl+C to copy; Ctrl+V to paste.", "Copy with Ctrl+C and paste with Ctrl+V."),
    ("Version 2.0.1 fixes bug #17 and #23.", "v2.0.1 fixes bugs 17 and 23."),
    ("Wait... what?!", "Wait, what?"),
    ("naïve naive NAIVE", "naive"),
    # Python splits on the information separators U+001C-U+001F too (issue 20).
    ("one\x1ctwo\x1dthree", "one two three"),
    ("a\x1fb c", "a b\x1ec"),
    ("tab\tand\u00a0nbsp\u2003em", "tab and nbsp em"),
]


def main():
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    cases = []
    for output, reference in PAIRS:
        rouge = scorer.score(reference, output)
        cases.append({
            "output": output,
            "reference": reference,
            "rouge1": rouge["rouge1"].fmeasure,
            "rouge2": rouge["rouge2"].fmeasure,
            "rougeL": rouge["rougeL"].fmeasure,
            "bleu": sacrebleu.sentence_bleu(output, [reference]).score,
            "chrf": sacrebleu.sentence_chrf(output, [reference]).score,
        })
    path = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/text-metrics.json"
    document = {
        "generated_by": f"scripts/text_metrics_fixture.py with sacrebleu {sacrebleu.__version__} and rouge-score",
        "cases": cases,
    }
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(cases)} pairs written to {path}")


if __name__ == "__main__":
    main()

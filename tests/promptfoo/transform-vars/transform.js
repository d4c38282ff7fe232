module.exports.withNote = (vars, context) => ({
  greeting: 'Yo',
  count: vars.doc.startsWith('file://') ? 'file' : 'text',
  uuidLength: context.uuid.length,
});

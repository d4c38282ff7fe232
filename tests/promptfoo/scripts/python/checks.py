# Loaded the way promptfoo loads it: get_assert(output, context) unless a function is named.
def get_assert(output, context):
    return context["vars"]["item"] in output


def many(output, context):
    return int(context["vars"]["count"]) > 10


def graded(output, context):
    return {"pass": True, "score": 0.5, "reason": "half"}


def shout(output, context):
    return output.upper()

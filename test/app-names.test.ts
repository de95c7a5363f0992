// App names: an arrow function passed to app() takes the name of the variable it is assigned to,
// on the kernel side and on the workers alike (the name is part of the app's key).
import t from 'tap'
import { DataFlowKernel, ThreadPoolExecutor } from 'tsflow'
import { cube, explicit, greet, named, square, sumOfSquares, table, touch } from './fixtures/named-apps.js'

t.test('names come from the assignment, the function, or the option', async (t) => {
  t.equal(square.appName, 'square')
  t.equal(cube.appName, 'cube', 'a module-private const')
  t.equal(greet.appName, 'greet', 'a let with a type annotation')
  t.equal(touch.appName, 'touch', 'a bash app')
  t.equal(sumOfSquares.appName, 'sumOfSquares', 'a join app')
  t.equal(named.appName, 'doubled', "a named function keeps its own name")
  t.equal(explicit.appName, 'plusOne', 'the name option wins')
  t.equal(table.inObject.appName, 'anonymous', 'no assignment to read: anonymous, as before')
})

t.test('workers find apps named this way', async (t) => {
  const dfk = await new DataFlowKernel({ executors: [new ThreadPoolExecutor({ label: 'pool', maxThreads: 2 })] }).start()
  t.teardown(() => dfk.cleanup())
  t.equal(await square(7), 49)
  t.equal(await cube(3), 27)
  t.equal(await greet('you'), 'hello you')
  t.same(await sumOfSquares(4), [0, 1, 4, 9])
  t.equal(await table.inObject(5), 4)
})

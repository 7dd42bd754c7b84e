# spinemets_add_python_test(SCRIPT <file.py> [SLICER])
#
# Registers one Python test file (unittest.TestCase classes) in CTest:
# - without Slicer: add_test running `SPINEMETS_PYTHON -m pytest <file>` on
#   PyPI's slicer-core, with the repository's packages on PYTHONPATH;
# - with Slicer, only when SLICER is given: slicer_add_python_unittest, i.e. run
#   inside Slicer's Python by slicer.testing.runUnitTest. Only files that can pass
#   inside the application are marked SLICER (most files build the headless
#   slicer-core runtime, or start the venv's Python); inside Slicer the module
#   Test classes (<Module>Test, registered by each module) run every action.

if(NOT Slicer_FOUND)
  set(_default_python "${CMAKE_SOURCE_DIR}/.venv/bin/python")
  set(SPINEMETS_PYTHON "${_default_python}" CACHE FILEPATH "Python with slicer-core and the pinned requirements")
  if(NOT EXISTS "${SPINEMETS_PYTHON}")
    message(FATAL_ERROR "SPINEMETS_PYTHON='${SPINEMETS_PYTHON}' does not exist: run 'make venv' first or pass -DSPINEMETS_PYTHON=...")
  endif()
  set(SPINEMETS_PYTHONPATH
    "${CMAKE_SOURCE_DIR}"
    "${CMAKE_SOURCE_DIR}/SpineMetsSegment"
    "${CMAKE_SOURCE_DIR}/SpineMetsClassifier"
    )
  string(REPLACE ";" ":" SPINEMETS_PYTHONPATH "${SPINEMETS_PYTHONPATH}")
endif()

function(spinemets_add_python_test)
  cmake_parse_arguments(MY "SLICER" "SCRIPT" "" ${ARGN})
  get_filename_component(_name ${MY_SCRIPT} NAME_WE)
  if(Slicer_FOUND)
    if(MY_SLICER)
      slicer_add_python_unittest(SCRIPT ${MY_SCRIPT} TESTNAME_PREFIX spinemets_)
    endif()
  else()
    set(_test py_spinemets_${_name})
    add_test(NAME ${_test}
      COMMAND ${SPINEMETS_PYTHON} -m pytest -q -p no:cacheprovider ${CMAKE_CURRENT_SOURCE_DIR}/${MY_SCRIPT}
      WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
      )
    set_tests_properties(${_test} PROPERTIES
      ENVIRONMENT "PYTHONPATH=${SPINEMETS_PYTHONPATH};MPLBACKEND=Agg;PYTHONDONTWRITEBYTECODE=1;SPINEMETS_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
      TIMEOUT 900
      )
  endif()
endfunction()

# Collect every *.py file of a package folder, relative to the current source dir
# (slicerMacroBuildScriptedModule needs each script listed).
function(spinemets_collect_scripts out_var package_dir)
  file(GLOB_RECURSE _files RELATIVE ${CMAKE_CURRENT_SOURCE_DIR} CONFIGURE_DEPENDS
    ${CMAKE_CURRENT_SOURCE_DIR}/${package_dir}/*.py)
  set(${out_var} ${_files} PARENT_SCOPE)
endfunction()
